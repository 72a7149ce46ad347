"""How far can one STaR iteration go at this scale? Fine-tune the primer on *perfect* rationales, side by side.

STaR's first iteration trains the primer on the rationales it kept. Its best case is that every kept rationale is
the gold scratchpad for every training problem. This trains the primer exactly as `nbkit.experiments.star.run`
does (same steps, batch, learning rate) on gold rationales for the same number of problems and reports held-out accuracy per digit
count next to the primer's, so a STaR run can be read against its ceiling.

    nbkit star --config configs/star_arithmetic.yaml --profile cpu      # registers cpu-star-primer
    python benchmarks/star_gold_ceiling.py --primer runs/cpu-star-primer/checkpoint
    # a training-volume sweep, no code: steps x batch, with or without the primer's rows replayed
    python benchmarks/star_gold_ceiling.py --primer ... --problems 192 --steps 30 60 96 --batch-size 8 --replay-primer

Greedy decoding, the same held-out problems as the loop's evaluation.
"""

import argparse
import copy
import time

from nbkit.experiments.star import StarConfig, primer_records, seed_examples
from nbkit.experiments.star.data import build_task, held_out
from nbkit.experiments.star.run import evaluate, train
from nbkit.models import load


def accuracy(cfg, task, model, tok, test) -> dict:
    ev = evaluate(cfg, model, tok, task, test, task.chat, progress=False)
    return {f"{d}-digit": round(a, 3) for d, a in sorted(ev["by_difficulty"].items())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primer", required=True, help="checkpoint directory of a STaR primer")
    ap.add_argument("--profile", default="cpu", help="sizes (steps, batch, lr, problems) from this profile")
    ap.add_argument("--problems", type=int, help="gold rationales to train on (default: the profile's)")
    ap.add_argument("--lr", type=float, nargs="+", help="learning rates to try (default: the profile's)")
    ap.add_argument("--steps", type=int, nargs="+", help="optimizer steps to try (default: the profile's)")
    ap.add_argument("--batch-size", type=int, help="SFT batch size (default: the profile's)")
    ap.add_argument("--replay-primer", action="store_true", help="train on the primer's rows too")
    ap.add_argument("--test-problems", type=int, help="held-out problems (default: the profile's)")
    args = ap.parse_args()

    cfg = StarConfig.for_profile(args.profile)
    cfg.batch_size = args.batch_size or cfg.batch_size
    cfg.test_problems = args.test_problems or cfg.test_problems
    task = build_task(cfg)
    test = held_out(task, cfg.test_problems)
    gold = task.train(args.problems or cfg.problems_per_iteration, salt="gold-ceiling")
    records = [task.sft_record(ex) for ex in gold]
    if args.replay_primer:
        records += primer_records(task, *seed_examples(cfg, task))
    primer, tok = load(args.primer, dtype="float32")
    print(f"primer: {accuracy(cfg, task, primer, tok, test)}")
    rows = len(records)
    for lr in args.lr or [cfg.lr]:
        for steps in args.steps or [cfg.steps(1, rows)]:
            model, t0 = copy.deepcopy(primer), time.perf_counter()
            # leaves the model in eval mode
            train(cfg, model, tok, records, None, steps=steps, lr=lr, progress=False)
            took = time.perf_counter() - t0
            print(
                f"gold rationales for {len(gold)} problems{' + primer rows' if args.replay_primer else ''} "
                f"({rows} rows), {steps} steps of batch {cfg.batch_size} = {steps * cfg.batch_size / rows:.1f} "
                f"epochs at lr {lr:g} ({took:.0f} s): {accuracy(cfg, task, model, tok, test)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
