"""A busy laptop: SFT step time and sampling throughput alone, then beside one competing PyTorch process, in one run.

For each setting below, a fresh process measures (a) the median time of an SFT step (TRL through `nbkit.train.sft`)
and (b) the sampler's tokens per second (`nbkit.sampling.sample`), first alone, then while a second process trains
the same model in a loop with the SAME setting (a second notebook on the laptop runs nbkit too). It prints the
slowdown per setting, with the load average when each measurement started. The settings isolate the suspects:

- default:   PyTorch's own choice, as many intra-op threads as cores, and OpenMP's default wait policy (threads
             spin for a while at every barrier before they sleep);
- passive:   OMP_WAIT_POLICY=PASSIVE: waiting threads sleep at once instead of spinning;
- 1 thread:  torch.set_num_threads(1): no barrier to wait at, and two processes fit two cores;
- nbkit:     nbkit's default (`nbkit/threads.py`): PASSIVE, and as many threads as cores other processes leave
             free when a trainer starts (and every 10 s) and before each sampling call.

    OMP_NUM_THREADS= nice -n 15 python benchmarks/contention.py                     # tiny model, all settings
    nice -n 15 python benchmarks/contention.py --models tiny smollm2-135m --settings default nbkit
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {  # the environment of both processes
    "default": {"NBKIT_THREADS": "off"},
    "passive": {"NBKIT_THREADS": "off", "OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"NBKIT_THREADS": "1"},
    "nbkit": {"NBKIT_THREADS": "auto"},
}
SIZES = {
    "tiny": dict(steps=8, batch=8, new_tokens=32, prompts=16),
    "smollm2-135m": dict(steps=3, batch=4, new_tokens=16, prompts=8),
}


def _setup(model_name: str):
    from nbkit.models import load
    from nbkit.tasks import Arithmetic

    model, tok = load(model_name, dtype="float32")
    return model, tok, Arithmetic(digits=(1, 2))


def measure(model_name: str) -> dict:
    import torch
    from transformers import TrainerCallback

    from nbkit.sampling import sample
    from nbkit.train import sft

    model, tok, task = _setup(model_name)
    size = SIZES.get(model_name, SIZES["smollm2-135m"])

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

    chats = [task.chat(ex) for ex in task.test(size["prompts"])]
    sample(model, tok, chats[:2], max_new_tokens=4, progress=False)  # warm-up
    out = sample(
        model, tok, chats, max_new_tokens=size["new_tokens"], temperature=1.0, seed=0, progress=False
    )
    sample_threads = torch.get_num_threads()
    records = [task.sft_record(ex) for ex in task.train(64)]
    timer = StepTimes()
    model.train()
    start = time.perf_counter()
    sft(
        model,
        tok,
        records,
        steps=size["steps"] + 1,
        batch_size=size["batch"],
        callbacks=[timer],
        disable_tqdm=True,
    )
    steps = [b - a for a, b in zip([start] + timer.marks, timer.marks)][1:]  # the first step warms up
    return {
        "sft_step_s": statistics.median(steps),
        "sample_tok_s": out.tokens_per_second,
        "threads": f"{sample_threads}/{torch.get_num_threads()}",  # while sampling / at the end of training
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
    }


def compete(model_name: str) -> None:
    """Train the model on random tokens until killed (a second notebook training beside ours)."""
    import torch

    model, tok, _ = _setup(model_name)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = torch.randint(0, len(tok), (8, 128))
    print("ready", flush=True)
    while True:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()


def _worker(role: str, model: str, setting: str) -> list[str]:
    return [sys.executable, __file__, "--worker", role, "--models", model, "--settings", setting]


def _env(setting: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "NBKIT_THREADS"}
    }
    return {**env, **SETTINGS[setting]}


def run_measure(model: str, setting: str) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run(
        _worker("measure", model, setting), env=_env(setting), capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"measure {model} {setting} failed:\n{out.stderr[-2000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}


def run_beside(model: str, setting: str) -> dict:
    rival = subprocess.Popen(
        _worker("compete", model, setting),
        env=_env(setting),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        rival.stdout.readline()  # "ready": its model is loaded and it is training
        time.sleep(2)
        return run_measure(model, setting)
    finally:
        rival.kill()
        rival.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--worker", choices=["measure", "compete"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "measure":
        print(json.dumps(measure(args.models[0])))
        return
    if args.worker == "compete":
        compete(args.models[0])
        return

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    print(f"{os.cpu_count()} cores, {cpu}; nice {os.nice(0)}")
    print("threads: PyTorch's intra-op threads while sampling / at the end of training, alone -> beside")
    for model in args.models:
        for setting in args.settings:
            alone, busy = run_measure(model, setting), run_beside(model, setting)
            sft_x = busy["sft_step_s"] / alone["sft_step_s"]
            tok_x = alone["sample_tok_s"] / busy["sample_tok_s"]
            print(
                f"{model:12} {setting:8} | threads {alone['threads']} -> {busy['threads']} | SFT "
                f"{alone['sft_step_s']:.3f} -> {busy['sft_step_s']:.3f} s/step x{sft_x:.1f} | sampling "
                f"{alone['sample_tok_s']:.0f} -> {busy['sample_tok_s']:.0f} tok/s x{tok_x:.1f} | load average "
                f"{alone['load']:.2f} -> {busy['load']:.2f}",
                flush=True,
            )
    print("x: slowdown beside one competing process with the same setting (target <= 2.5; a fair share is 2)")


if __name__ == "__main__":
    main()
