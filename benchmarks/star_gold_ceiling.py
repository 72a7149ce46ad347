"""How far can one STaR iteration go at this scale? Fine-tune the primer on *perfect* rationales, side by side.

STaR's first iteration trains the primer on the rationales it kept. Its best case is that every kept rationale is
the gold scratchpad for every training problem. This trains the primer exactly as `run_star` does (same steps,
batch, learning rate) on gold rationales for the same number of problems and reports held-out accuracy per digit
count next to the primer's, so a STaR run can be read against its ceiling.

    nbkit star --config configs/star_arithmetic.yaml --profile cpu      # registers cpu-star-primer
    python benchmarks/star_gold_ceiling.py --primer runs/cpu-star-primer/checkpoint

Greedy decoding, the same held-out problems as the loop's evaluation.
"""

import argparse
import copy
import dataclasses
import time

from nbkit import star
from nbkit.star import StarConfig


def accuracy(cfg, task, model, tok, test) -> dict:
    ev = star._evaluate(cfg, task, model, tok, test, task.chat, world=1)
    return {f"{d}-digit": round(a, 3) for d, a in sorted(ev["by_difficulty"].items())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primer", required=True, help="checkpoint directory of a STaR primer")
    ap.add_argument("--profile", default="cpu", help="sizes (steps, batch, lr, problems) from this profile")
    ap.add_argument("--problems", type=int, help="gold rationales to train on (default: the profile's)")
    ap.add_argument("--lr", type=float, nargs="+", help="learning rates to try (default: the profile's)")
    args = ap.parse_args()

    cfg = dataclasses.replace(StarConfig.for_profile(args.profile), verbose=False)
    task = star.build_task(cfg)
    test = star.held_out(task, cfg.test_problems)
    train = task.train(args.problems or cfg.problems_per_iteration, salt="gold-ceiling")
    records = [task.sft_record(ex) for ex in train]
    primer, tok = star.load_model(args.primer)
    print(f"primer: {accuracy(cfg, task, primer, tok, test)}")
    for lr in args.lr or [cfg.lr]:
        model, t0 = copy.deepcopy(primer), time.perf_counter()
        star._sft(cfg, model, tok, records, cfg.steps(1), lr, None)  # leaves the model in eval mode
        took = time.perf_counter() - t0
        print(
            f"gold rationales for {len(train)} problems, {cfg.steps(1)} steps at lr {lr:g} ({took:.0f} s): "
            f"{accuracy(cfg, task, model, tok, test)}"
        )


if __name__ == "__main__":
    main()
