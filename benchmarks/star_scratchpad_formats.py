"""Why the arithmetic scratchpad writes out what is left of both numbers on every line, measured side by side.

Two scratchpads for the same sums, the one nbkit uses and the shorter one it replaced:

    numbers (nbkit)            digits only (replaced)
    847+285: 7+5=12 -> 2       7+5=12 -> 2
    84+28: 4+8+1=13 -> 32      4+8+1=13 -> 32
    8+2: 8+2+1=11 -> 132       8+2+1=11 -> 132
    carry 1 -> 1132            carry 1 -> 1132

For each, in one run: the STaR cpu primer is trained from the base model (1-2 digit seeds plus hinted ones), then
fine-tuned on gold rationales as one STaR iteration would be (the best case for what it can keep). After each
stage, greedy held-out accuracy per digit count, and for every wrong 3-digit answer the first line that departs
from the gold scratchpad, sorted into "wrong digits" (it adds digits from the wrong column), "wrong sum" (right
digits, wrong total) and "other".

    python benchmarks/star_scratchpad_formats.py                 # cpu profile sizes, about 10 min on 2 cores
    python benchmarks/star_scratchpad_formats.py --problems 192
"""

import argparse
import collections
import itertools
import re
import time

import nbkit.tasks.arithmetic as arithmetic
from nbkit.experiments.star import StarConfig, primer_records, seed_examples
from nbkit.experiments.star.data import build_task, held_out, split_rationale
from nbkit.experiments.star.run import evaluate, train
from nbkit.models import load

NUMBERS = arithmetic.scratchpad
_STEP = re.compile(r"(\d)\+(\d)(?:\+(\d))?=(\d+)")


def digits_only(a: int, b: int) -> str:
    """The replaced format: NUMBERS without the leading "847+285: " on each line."""
    return "\n".join(re.sub(r"^\d+\+\d+: ", "", line) for line in NUMBERS(a, b).split("\n"))


def first_error(gold: str, got: str) -> str:
    """Where a wrong rationale first departs from the gold one: wrong digits, wrong sum, or other."""
    for want, have in itertools.zip_longest(gold.split("\n"), got.split("\n"), fillvalue=""):
        if want == have:
            continue
        w, h = _STEP.search(want), _STEP.search(have)
        if w and h and w.group(1, 2) != h.group(1, 2):
            return "wrong digits"
        if w and h and w.group(4) != h.group(4):
            return "wrong sum"
        return "other"
    return "other"


def measure(cfg, task, model, tok, test) -> str:
    ev = evaluate(cfg, model, tok, task, test, task.chat, progress=False)
    by = " ".join(f"{d}-digit {a:.0%}" for d, a in sorted(ev["by_difficulty"].items()))
    errors = collections.Counter(
        first_error(arithmetic.scratchpad(ex.meta["a"], ex.meta["b"]), split_rationale(row["completion"]))
        for ex, row in zip(test, ev["rows"])
        if ex.difficulty == 3 and not row["correct"]
    )
    wrong = sum(errors.values())
    return f"{by}; wrong 3-digit answers: {wrong}, first error " + ", ".join(
        f"{kind} {n}" for kind, n in errors.most_common()
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--profile", default="cpu", help="sizes (primer, steps, batch, lr, problems) from this profile"
    )
    ap.add_argument("--problems", type=int, help="gold rationales in the iteration (default: the profile's)")
    args = ap.parse_args()

    cfg = StarConfig.for_profile(args.profile)
    for label, pad in [("numbers (nbkit)", NUMBERS), ("digits only", digits_only)]:
        arithmetic.scratchpad = pad  # Arithmetic.make and .faithful look it up at call time
        task = build_task(cfg)
        test = held_out(task, cfg.test_problems)
        model, tok = load(cfg.model, dtype="float32")
        t0 = time.perf_counter()
        records = primer_records(task, *seed_examples(cfg, task))
        how = dict(steps=None, lr=cfg.primer_lr, epochs=cfg.primer_epochs, progress=False)
        primer = train(cfg, model, tok, records, None, **how)
        steps = primer.state.global_step
        print(f"[{label}] primer ({steps} steps): {measure(cfg, task, model, tok, test)}", flush=True)
        gold = task.train(args.problems or cfg.problems_per_iteration, salt="gold-ceiling")
        gold_rows = [task.sft_record(ex) for ex in gold]
        train(cfg, model, tok, gold_rows, None, steps=cfg.steps(1), lr=cfg.lr, progress=False)
        print(
            f"[{label}] + gold rationales for {len(gold)} problems ({cfg.steps(1)} steps): "
            f"{measure(cfg, task, model, tok, test)} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    arithmetic.scratchpad = NUMBERS


if __name__ == "__main__":
    main()
