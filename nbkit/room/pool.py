"""Pooling a room: every laptop ran the same experiment with its own seed, so together they are a replication study.

What is pooled together: the entries of one notebook that share a profile and a replicate key (the hash of the
config without its seed, nbkit.workshop.summary.config_hash): the same experiment, other seeds.

How a claim is pooled: a random-effects meta-analysis (DerSimonian-Laird), with the Hartung-Knapp interval.
- Each laptop gives an effect and a within-run 95% interval (over its problems or prompts); its standard error is
  the interval's width / (2 x 1.96), and never less than 1/n: an effect measured on n items cannot be surer than
  one item in n, even when every item came out the same and the bootstrap interval has zero width.
- Seeds change the data drawn, the samples and the training, so the laptops' effects differ by more than their
  within-run intervals say: tau (the between-seed standard deviation) is that extra spread, and I2 the share of the
  spread it explains. This is the question a careful attendee asks: is the effect robust, or did my seed get lucky?
- The pooled effect weights each laptop by 1 / (se^2 + tau^2); with equal-sized runs that is close to the plain
  mean.
- The interval is Hartung-Knapp's (t with k - 1 degrees of freedom, on the weighted spread of the laptops' effects,
  never narrower than the within-run errors imply): with 5-30 laptops DerSimonian-Laird's own normal interval is
  too narrow, and so is a bootstrap over laptops (a percentile bootstrap over 8 values covers about 90%, not 95%).
- The pooled verdict is the interval's, with the claim's rule (nbkit.claims.Claim): AGREES when it lies on the
  paper's side of the claim's null (0 for a difference, the target for a level claim such as "at least 20%"). The paper's side is the claim's `direction` when the summary gives it, else the side its
  AGREES laptops are on, else +1 (nbkit.claims' default).

    entries = Room("room").entries()
    for label, group in groups(entries).items():
        print(label, pool_claims(group))
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from nbkit.claims import Z95, Claim

# t quantiles for a two-sided 95% interval, 1..30 degrees of freedom; beyond, a Cornish-Fisher expansion
T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
]
T975 += [
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]
COUNTED = ("AGREES", "DEPARTS", "INCONCLUSIVE")


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom. Example: t975(2) -> 4.303; t975(60) -> 2.000"""
    if df <= len(T975):
        return T975[df - 1]
    z = Z95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def random_effects(effects, ses) -> dict:
    """DerSimonian-Laird random-effects pooling of k laptops' effects (shape (k,)) with standard errors (k,), and
    the Hartung-Knapp 95% interval.

    Returns {"k", "effect", "lo", "hi", "se", "tau", "i2", "q"}; for k = 1 the interval is NaN (one laptop pools
    nothing). Example: random_effects([0.1, 0.3, 0.5], [0.1, 0.1, 0.1]) -> effect 0.3, q 8, tau2 0.03 (tau 0.173),
    i2 0.75, se sqrt(1/75) = 0.1155, interval 0.3 -/+ 4.303 x 0.1155 = [-0.197, +0.797]
    """
    y, s2 = np.asarray(effects, dtype=float), np.asarray(ses, dtype=float) ** 2
    k = len(y)
    if k == 0:
        raise ValueError("random_effects: no estimates to pool")
    w = 1 / s2
    fixed = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - fixed) ** 2))
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    tau2 = max(0.0, (q - (k - 1)) / c) if k > 1 else 0.0
    w_star = 1 / (s2 + tau2)
    mu = float(np.sum(w_star * y) / np.sum(w_star))
    out = {
        "k": k,
        "effect": mu,
        "tau": math.sqrt(tau2),
        "q": q,
        "i2": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
    }
    if k == 1:
        return out | {"se": math.nan, "lo": math.nan, "hi": math.nan}
    spread = max(1.0, float(np.sum(w_star * (y - mu) ** 2)) / (k - 1))  # Hartung-Knapp, never below 1
    se = math.sqrt(spread / np.sum(w_star))
    return out | {"se": se, "lo": mu - t975(k - 1) * se, "hi": mu + t975(k - 1) * se}


def within_se(lo: float, hi: float, n: int | None) -> float:
    """A laptop's standard error from its 95% interval, at least 1/n. Example: within_se(0.1, 0.5, 48) -> 0.102"""
    known = n is not None and n == n and n > 0  # pandas gives NaN for a claim without n
    return max((hi - lo) / (2 * Z95), 1 / n if known else 1e-9)


# ---------------------------------------------------------------------------------------------------- grouping


def group_label(entry: dict) -> str:
    """ "01 · smoke · 3fa2c1": the notebook, the profile and the replicate key an entry pools under."""
    nb = entry["notebook"]
    key = nb.get("replicate_key") or "no replicate key"
    return f"{nb['notebook']} · {nb.get('profile') or entry.get('profile') or '?'} · {key}"


def groups(entries: list[dict]) -> dict[str, list[dict]]:
    """Entries by what pools together (group_label), notebooks in order, the most laptops first within one."""
    out: dict[str, list[dict]] = {}
    for e in entries:
        out.setdefault(group_label(e), []).append(e)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][:2], -len(kv[1]), kv[0])))


def claim_keys(texts: list[str]) -> list[str]:
    """The keys that match one laptop's claims with another's: the wording, numbers and verdicts aside (a claim's
    text may quote its own measurement), and which occurrence of that wording it is (03 words one claim per budget).
    A laptop whose run made one claim more or less (e.g. a STaR loop that stopped early) still lines up.

    Example: ["at B = 16, SFT (acc 0.49)", "at B = 32, SFT (acc 0.61)", "gain"]
    -> ["at B = #, SFT (acc #)|0", "at B = #, SFT (acc #)|1", "gain|0"]
    """
    seen: Counter = Counter()
    keys = []
    for text in texts:
        text = re.sub(
            r"AGREES|DEPARTS|INCONCLUSIVE|NOT CHECKED", "VERDICT", text
        )  # a text claim names its own
        text = re.sub(r"[-+]?[0-9]+(?:[.][0-9]+)?", "#", text)
        keys.append(f"{text}|{seen[text]}")
        seen[text] += 1
    return keys


def common_text(texts: list[str]) -> str:
    """The wording laptops share, a word that differs shown as "…".
    Example: ["a gain of 3 (acc 0.41)", "a gain of 3 (acc 0.52)"] -> "a gain of 3 (acc …)" """
    split = [t.split(" ") for t in texts]
    if len({len(s) for s in split}) != 1:
        return texts[0]
    return " ".join(
        ws[0] if len(set(ws)) == 1 else "…" + re.search(r"[)\],;:]*$", ws[0])[0] for ws in zip(*split)
    )


def laptop_claims(entries: list[dict]) -> pd.DataFrame:
    """One row per laptop and claim: laptop, name, seed, key, text, verdict, effect, lo, hi, n, direction, null (the
    value the claim is tested against: 0 for a difference, the target for a level such as "at least 20%")."""
    rows = [
        {
            "laptop": e["laptop"]["key"],
            "name": e["laptop"]["name"],
            "seed": e["notebook"].get("seed"),
            "key": key,
            "text": c["claim"],
            "verdict": c.get("verdict"),
            "effect": c.get("effect"),
            "lo": c.get("ci_lo"),
            "hi": c.get("ci_hi"),
            "n": c.get("n"),
            "direction": c.get("direction"),
            "null": c.get("null"),
        }
        for e in entries
        for c, key in zip(
            e["notebook"].get("claims", []), claim_keys([c["claim"] for c in e["notebook"].get("claims", [])])
        )
    ]
    columns = [
        "laptop",
        "name",
        "seed",
        "key",
        "text",
        "verdict",
        "effect",
        "lo",
        "hi",
        "n",
        "direction",
        "null",
    ]
    return pd.DataFrame(rows, columns=columns)


def direction(rows: pd.DataFrame) -> int:
    """The paper's side of a claim: its `direction` if the summaries give it, else the side of the effects its AGREES
    laptops measured (the side of its DEPARTS laptops, reversed), else +1."""
    given = rows["direction"].dropna()
    if len(given):
        return int(given.iloc[0])
    decided = rows[rows["verdict"].isin(["AGREES", "DEPARTS"]) & rows["effect"].notna()]
    votes = sum(np.sign(r.effect) * (1 if r.verdict == "AGREES" else -1) for r in decided.itertuples())
    return int(np.sign(votes)) or 1


def null_of(rows: pd.DataFrame) -> float:
    """The value a claim is tested against: its `null` if the summaries give it (a level claim's target), else 0."""
    given = rows["null"].dropna()
    return float(given.iloc[0]) if len(given) else 0.0


def pool_claims(entries: list[dict]) -> pd.DataFrame:
    """One row per claim of one experiment's entries: how many laptops agree, depart or are inconclusive, the
    pooled effect and its between-laptop interval (random_effects), tau, I2, the median within-run half width, and
    the pooled verdict. Claims without an effect (text claims) get counts only."""
    table = laptop_claims(entries)
    out = []
    for key, rows in table.groupby("key", sort=False):
        counts = Counter(rows["verdict"])
        row = {
            "claim": common_text(list(rows["text"])),
            "laptops": len(rows),
            **{v: counts.get(v, 0) for v in COUNTED},
            "effect": math.nan,
            "lo": math.nan,
            "hi": math.nan,
            "tau": math.nan,
            "i2": math.nan,
            "within": math.nan,
            "verdict": None,
            "null": null_of(rows),
            "key": key,
        }
        measured = rows.dropna(subset=["effect", "lo", "hi"])
        if len(measured):
            ses = [within_se(r.lo, r.hi, r.n) for r in measured.itertuples()]
            pooled = random_effects(measured["effect"], ses)
            row |= {k: pooled[k] for k in ("effect", "lo", "hi", "tau", "i2")}
            row["within"] = float(np.median((measured["hi"] - measured["lo"]) / 2))
            if len(measured) > 1:
                claim = Claim(
                    row["claim"],
                    pooled["effect"],
                    pooled["lo"],
                    pooled["hi"],
                    len(measured),
                    direction(rows),
                    null=row["null"],
                )
                row["verdict"] = claim.verdict
        out.append(row)
    columns = [
        "claim",
        "laptops",
        *COUNTED,
        "effect",
        "lo",
        "hi",
        "tau",
        "i2",
        "within",
        "verdict",
        "null",
        "key",
    ]
    return pd.DataFrame(out, columns=columns)


# ------------------------------------------------------------------------------------------ curves and minutes


def curve_rows(name: str, curve: dict) -> list[dict]:
    """One curve of a summary as rows {curve, series, x, y}. Three shapes:
    - {x: y} (e.g. accuracy by digits {"1": 0.65, "2": 0.05}): one series;
    - columns whose first one is x (e.g. {"step": [0, 8], "alone": [.1, .2], "warm": [.3, .5]}): a series per
      other column;
    - a long table whose first column repeats (e.g. the budget heat-map {"budget", "fraction", ..., "accuracy"}): a
      series per value of the first column, x the second column, y the last.
    """
    if all(not isinstance(v, list) for v in curve.values()):
        return [{"curve": name, "series": name, "x": x, "y": y} for x, y in curve.items() if _number(y)]
    cols = [k for k, v in curve.items() if isinstance(v, list)]
    first = curve[cols[0]]
    if len(set(map(str, first))) == len(first):
        return [
            {"curve": name, "series": col, "x": x, "y": y}
            for col in cols[1:]
            for x, y in zip(first, curve[col])
            if _number(y)
        ]
    second, last = curve[cols[1]], curve[cols[-1]]
    return [
        {"curve": name, "series": f"{cols[0]} = {g}", "x": x, "y": y}
        for g, x, y in zip(first, second, last)
        if _number(y)
    ]


def _number(y) -> bool:
    return isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y)


def curves(entries: list[dict]) -> pd.DataFrame:
    """Every laptop's curves, long: laptop, name, curve, series, x, y."""
    rows = [
        {"laptop": e["laptop"]["key"], "name": e["laptop"]["name"], **r}
        for e in entries
        for name, curve in e["notebook"].get("curves", {}).items()
        if isinstance(curve, dict) and curve
        for r in curve_rows(name, curve)
    ]
    return pd.DataFrame(rows, columns=["laptop", "name", "curve", "series", "x", "y"])


def curve_medians(frame: pd.DataFrame) -> pd.DataFrame:
    """The laptops' median of each curve at each x: curve, series, x, median, laptops."""
    if frame.empty:
        return pd.DataFrame(columns=["curve", "series", "x", "median", "laptops"])
    g = frame.groupby(["curve", "series", "x"], sort=False)["y"]
    return pd.DataFrame({"median": g.median(), "laptops": g.count()}).reset_index()


def stage_minutes(entries: list[dict]) -> pd.DataFrame:
    """Minutes per stage and laptop, with its CPU: the notebook's minutes (from `nbkit report`) and the values it
    records as *_minutes or *_seconds (e.g. 01's loop_minutes). Columns: laptop, name, cpu, threads, stage,
    minutes."""
    rows = []
    for e in entries:
        nb, mc = e["notebook"], e.get("machine") or {}
        stages = {nb["notebook"]: nb.get("minutes")}
        for k, v in (nb.get("values") or {}).items():
            if k.endswith("_minutes") or k.endswith("_seconds"):
                scale = 1 if k.endswith("_minutes") else 1 / 60
                stages[f"{nb['notebook']} {k.rsplit('_', 1)[0]}"] = v * scale if _number(v) else None
        for stage, minutes in stages.items():
            if _number(minutes):
                rows.append(
                    {
                        "laptop": e["laptop"]["key"],
                        "name": e["laptop"]["name"],
                        "cpu": f"{mc.get('cpu', '?')} ({mc.get('threads', '?')} threads)",
                        "stage": stage,
                        "minutes": minutes,
                    }
                )
    return pd.DataFrame(rows, columns=["laptop", "name", "cpu", "stage", "minutes"])


def laptops(entries: list[dict]) -> pd.DataFrame:
    """One row per laptop: name, id (6 hex digits of its key), seed, CPU, threads, load, minutes, verdict counts."""
    rows = []
    for e in entries:
        nb, mc = e["notebook"], e.get("machine") or {}
        verdicts = Counter(c.get("verdict") for c in nb.get("claims", []))
        rows.append(
            {
                "name": e["laptop"]["name"],
                "id": e["laptop"]["key"][:6],
                "seed": nb.get("seed"),
                "cpu": mc.get("cpu"),
                "threads": mc.get("threads"),
                "load": (mc.get("load_end") or mc.get("load_start") or [None])[0],
                "minutes": nb.get("minutes"),
                **{v.lower(): verdicts.get(v, 0) for v in COUNTED},
            }
        )
    return pd.DataFrame(
        rows,
        columns=["name", "id", "seed", "cpu", "threads", "load", "minutes"] + [v.lower() for v in COUNTED],
    )


# ------------------------------------------------------------------------------------------------ as text


def _signed(x) -> str:
    return "n/a" if x is None or x != x else f"{x:+.3f}"


def text_report(entries: list[dict]) -> str:
    """The pooled view as text, for a terminal or the guide: per experiment, each claim with the laptops' verdict
    counts, the pooled effect and its between-laptop interval, tau beside the median within-run half width, and
    every laptop's own estimate in seed order (the spread a single run cannot show).

    Example line: "  pooled +0.376 [+0.311, +0.441] AGREES · tau 0.031 · within-run +/-0.142 · 5 laptops: 5 A"
    """
    lines = []
    for label, group in groups(entries).items():
        seeds = [e["notebook"].get("seed") for e in group]
        lines.append(f"{label}: {len(group)} laptop{'s' * (len(group) != 1)}, seeds {_seed_list(seeds)}")
        table, mine = pool_claims(group), laptop_claims(group)
        mine = mine.assign(order=[_seed_order(s) for s in mine["seed"]]).sort_values(["order", "name"])
        for row in table.itertuples():
            counts = " ".join(f"{getattr(row, v)} {v[0]}" for v in COUNTED if getattr(row, v))
            lines.append(f"- {row.claim}")
            if row.effect == row.effect:  # a measured claim
                against = f" against {row.null:g}" if row.null else ""
                pooled = (
                    f"pooled {_signed(row.effect)} [{_signed(row.lo)}, {_signed(row.hi)}]{against} "
                    f"{row.verdict or ''}"
                    if row.lo == row.lo
                    else f"one laptop: {_signed(row.effect)}"
                )
                own = " ".join(_signed(x) for x in mine[mine["key"] == row.key]["effect"])
                lines.append(
                    f"  {pooled.rstrip()} · tau {row.tau:.3f} · within-run +/-{row.within:.3f} · "
                    f"{row.laptops} laptops: {counts}"
                )
                lines.append(f"  each laptop (seed order): {own}")
            else:
                lines.append(f"  {row.laptops} laptops: {counts}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n" if lines else "no submissions\n"


def _seed_order(seed):
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def _seed_list(seeds: list) -> str:
    return ", ".join("?" if s is None else str(s) for s in sorted(seeds, key=_seed_order))
