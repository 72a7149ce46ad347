"""Does RL itself raise the reward after a warm-start, and at what cost? RFT arms side by side, from the same base.

Each arm is `nbkit.experiments.rft.run` (the 02 notebook's pipeline) with the cpu profile plus overrides. For each it
prints the held-out probe reward at step 0 (after any warm-start) and at the end, RL's own gain with a bootstrap 95%
interval over the probe prompts (nbkit.claims), the zero-std share of the probe at the start and the end, the share of
GRPO's training groups with zero std, and the wall time.

    python benchmarks/rft_warmstart_gain.py                                # the notebook's two main arms
    python benchmarks/rft_warmstart_gain.py --set lr=1e-5 --set steps=60   # another point on the frontier
    python benchmarks/rft_warmstart_gain.py --arms warm --set lora=true --set lr=2e-4

The notebook's cpu profile is the point chosen from such runs; the table of candidates is in the issue-12 note.
Times depend on the machine's load: run it on a quiet machine to compare settings by minutes.
"""

import argparse
import ast
import dataclasses
import subprocess
import tempfile
import time

from nbkit.claims import paired
from nbkit.experiments.rft import RftConfig, run
from nbkit.runs import Registry

ARMS = {
    "alone": dict(warmstart_fraction=0.0),
    "warm": dict(warmstart_fraction=0.1),
    "resample": dict(warmstart_fraction=0.0, zero_std_filter="resample"),
}


def value(text: str):
    """ "1e-5" -> 1e-05, "60" -> 60, "true" -> True, "[1, 2]" -> [1, 2], anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def row(label: str, result, seconds: float) -> dict:
    train, probes, _ = result.tables()
    first, last = probes.iloc[0], probes.iloc[-1]
    gain = paired(last["probe/prompt_mean"], first["probe/prompt_mean"], "gain")
    return {
        "arm": label,
        "reward start": round(float(first["probe/mean_reward"]), 3),
        "reward end": round(float(last["probe/mean_reward"]), 3),
        "RL gain [95% CI]": f"{gain.effect:+.3f} [{gain.lo:+.3f}, {gain.hi:+.3f}]",
        "zero-std start/end": f"{first['probe/frac_zero_std']:.2f}/{last['probe/frac_zero_std']:.2f}",
        "train zero-std": round(float(train["frac_reward_zero_std"].mean()), 2),
        "minutes": round(seconds / 60, 1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", nargs="+", default=["alone", "warm"], choices=list(ARMS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="RftConfig override")
    args = ap.parse_args()
    overrides = {k: value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    base = dataclasses.replace(RftConfig.for_profile("cpu"), grad_prompts=0, save_model=False, **overrides)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"overrides {overrides or 'none'}; load at start: {load}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry(tmp)
        for arm in args.arms:
            cfg = dataclasses.replace(base, name=f"bench-{arm}", **ARMS[arm])
            start = time.perf_counter()
            result = run(cfg, reg, progress=False)
            rows.append(row(arm, result, time.perf_counter() - start))
            print(rows[-1], flush=True)
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))
    print("load at end:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
