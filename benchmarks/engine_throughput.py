"""Which generation path serves a batch fastest on this CPU: nbkit's serving engine (nbkit.serve.engine), one plain
batched `generate` (nbkit.sampling.sample) and transformers' own continuous batching (`generate_batch` with
`attn_implementation="sdpa"`, at its defaults and at a few page sizes / batch-token budgets). Not a test.

    NBKIT_THREADS=2 nice -n 10 .venv/bin/python benchmarks/engine_throughput.py --model smollm2-135m
    .venv/bin/python benchmarks/engine_throughput.py --model tiny --prompts 8 --new 16 --no-cb    # a quick check

Workloads, each run on every path on the same prompts, in one process:
- chat: `--prompts` different chat questions, greedy, `--new` new tokens (the apps' room, all at once);
- star: 32 prompts sampled at temperature 1.0 (STaR rationales), 64 new tokens;
- grpo: 4 prompts x 8 completions at temperature 1.0 (a GRPO group).
Reported: real tokens/s (tokens up to EOS, padding excluded) and each path's ratio to `generate`.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

TOPICS = [
    "the moon", "bread", "rivers", "chess", "volcanoes", "bees", "the piano", "glaciers", "tea", "owls",
    "bicycles", "deserts", "coral reefs", "maps", "clocks", "salt", "whales", "paper", "thunder", "gardens",
    "trains", "honey", "mountains", "kites", "lighthouses", "wool", "comets", "olive trees", "bridges", "snow",
    "dolphins", "castles",
]  # fmt: skip


def chat_prompts(n: int) -> list[str]:
    return [f"Tell me three facts about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def star_prompts(n: int) -> list[str]:
    return [
        f"What is {17 + 3 * i} + {28 + 5 * i}? Think step by step, then write Answer: N." for i in range(n)
    ]


def timed(fn):
    start = time.perf_counter()
    tokens = fn()
    return tokens, time.perf_counter() - start


def run_generate(model, tok, prompts, k, new, temperature):
    from nbkit.sampling import sample

    out = sample(model, tok, prompts, k=k, max_new_tokens=new, temperature=temperature, progress=False)
    return out.n_tokens


def run_engine(engine, model, tok, prompts, k, new, temperature):
    return engine.sample(model, tok, prompts, k=k, max_new_tokens=new, temperature=temperature).n_tokens


def run_cb(cb_model, tok, prompts, k, new, temperature, cb_config):
    from transformers import GenerationConfig

    from nbkit.sampling import encode_prompts, eos_ids, generation_kwargs

    ids = encode_prompts(tok, prompts)
    kw = generation_kwargs(cb_model, tok, new, temperature, 1.0)
    cfg = GenerationConfig(**{k_: v for k_, v in kw.items() if v is not None}, num_return_sequences=k)
    out = cb_model.generate_batch(
        inputs=ids, generation_config=cfg, continuous_batching_config=cb_config, warmup=False
    )
    eos = eos_ids(cb_model, tok)
    total = 0
    for o in out.values():
        toks = o.generated_tokens
        cut = next((i + 1 for i, t in enumerate(toks) if t in eos), len(toks))
        total += cut
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--prompts", type=int, default=30, help="chat workload: prompts at once")
    p.add_argument("--new", type=int, default=64, help="new tokens per answer")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--workloads", default="chat,star,grpo")
    p.add_argument("--no-cb", action="store_true", help="skip transformers' continuous batching")
    args = p.parse_args()

    import os

    import torch
    from transformers import AutoModelForCausalLM

    from nbkit import models
    from nbkit.serve.engine import Engine

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    model, tok = models.load(args.model, threads=threads)
    engine = Engine(threads=threads)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    print(f"{args.model}, {model.dtype}, {threads} threads, {cpu}, load average {os.getloadavg()}")
    cb_model, cb_configs = None, {}
    if not args.no_cb:
        from transformers import ContinuousBatchingConfig

        cb_model = AutoModelForCausalLM.from_pretrained(
            models.resolve(args.model), dtype=model.dtype, attn_implementation="sdpa"
        ).eval()
        cb_configs = {
            "cb defaults": ContinuousBatchingConfig(),
            "cb page 32, 512 tok/batch": ContinuousBatchingConfig(page_size=32, max_batch_tokens=512),
            "cb page 64, 2048 tok/batch": ContinuousBatchingConfig(page_size=64, max_batch_tokens=2048),
        }
    workloads = {
        "chat": (chat_prompts(args.prompts), 1, args.new, 0.0),
        "star": (star_prompts(32), 1, 64, 1.0),
        "grpo": (star_prompts(4), 8, 64, 1.0),
    }
    run_generate(model, tok, chat_prompts(2), 1, 4, 0.0)  # warm-up
    run_engine(engine, model, tok, chat_prompts(2), 1, 4, 0.0)
    for name in args.workloads.split(","):
        prompts, k, new, temperature = workloads[name]
        print(f"\n{name}: {len(prompts)} prompts x {k}, {new} new tokens, temperature {temperature}")
        job = (prompts, k, new, temperature)
        paths = {
            "generate (nbkit.sampling)": partial(run_generate, model, tok, *job),
            "engine": partial(run_engine, engine, model, tok, *job),
        }
        for label, cfg in cb_configs.items():
            paths[label] = partial(run_cb, cb_model, tok, *job, cfg)
        base = None
        for label, fn in paths.items():
            try:
                n, s = timed(fn)
            except Exception as e:  # noqa: BLE001 - a path that fails is reported, the others still run
                print(f"  {label:27s} failed: {type(e).__name__}: {str(e)[:160]}")
                continue
            base = base or n / s
            print(f"  {label:27s} {n:6d} tokens {s:7.1f} s {n / s:7.1f} tok/s  {n / s / base:.2f}x")
    engine.close()
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
