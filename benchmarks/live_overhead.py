"""What the live training view costs: the same SFT run with and without it, side by side in one run.

The view draws a real PNG (as in a notebook, not headless) and hands it to a sink that drops it, so the cost
measured is nbkit's own: recording every log line, drawing at most about once a second, and never more than ~3% of
the time. It also reports the time spent inside the view's callbacks, a share that machine noise hardly moves,
which matters on a shared machine where run-to-run spread exceeds the view's cost. The arms alternate (off, on, off, on, ...) from the same starting weights so that a machine that speeds
up or slows down during the run affects both alike; the ratio compares medians.

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/live_overhead.py                  # tiny model, seconds
    python benchmarks/live_overhead.py --model smollm2-135m --steps 12 --repeats 2   # the workshop model
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

from nbkit.live import LiveCallback, LiveView
from nbkit.models import load
from nbkit.tasks import Arithmetic
from nbkit.train import sft


def one_run(model, tok, records, steps: int, live: bool) -> tuple[float, LiveView | None]:
    view = LiveView(display=lambda png, text: None, headless=False) if live else None
    callbacks = [LiveCallback(view, label="SFT")] if live else []
    student = copy.deepcopy(model).train()
    start = time.perf_counter()
    sft(student, tok, records, steps=steps, batch_size=4, callbacks=callbacks, disable_tqdm=True, seed=0)
    return time.perf_counter() - start, view


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    model, tok = load(args.model)
    task = Arithmetic(digits=(1, 2))
    records = [task.sft_record(ex) for ex in task.train(64)]
    one_run(model, tok, records, 2, live=True)  # warm-up: imports, matplotlib's font cache, first allocations
    times: dict[bool, list[float]] = {False: [], True: []}
    draws, draw_s, spent = [], [], []
    for _ in range(args.repeats):
        for live in (False, True):
            seconds, view = one_run(model, tok, records, args.steps, live)
            times[live].append(seconds)
            if view is not None:
                draws.append(view.draws)
                draw_s.append(view.draw_seconds)
                spent.append(view.spent / seconds)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    load1 = os.getloadavg()[0]
    print(
        f"model {args.model}, {args.steps} SFT steps, {args.repeats} runs per arm, load average {load1:.2f}"
    )
    print(f"  without the live view: {off:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[False])})")
    print(f"  with the live view:    {on:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[True])})")
    print(f"  draws per run: {draws}, the last frame took {statistics.median(draw_s) * 1000:.1f} ms (median)")
    print(f"  time inside the live view's callbacks: {', '.join(f'{x:.2%}' for x in spent)} of each run")
    print(f"  ratio with/without: {on / off:.3f}")


if __name__ == "__main__":
    main()
