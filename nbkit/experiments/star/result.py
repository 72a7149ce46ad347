"""STaR's result: one summary per iteration read back from the registry; its frames, plots and claims.

The claims pair problem by problem (`nbkit.claims.paired`: a bootstrap interval and McNemar's exact test): held-out
problems by their fixed evaluation order, train problems by their prompt.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nbkit.experiments.star.config import StarConfig
from nbkit.experiments.star.data import build_task, seed_examples, split_rationale, train_problems
from nbkit.files import read_jsonl


def problem_key(prompt) -> str:
    """A train problem's identity: its prompt (a chat, or a plain string) as canonical JSON."""
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


@dataclass
class StarResult:
    """What `run` returns: frame() and work_frame(), plot(), plot_kept(), plot_work(), claims() and say()."""

    config: StarConfig
    iterations: list[dict]  # summaries, iteration 0 (the seed model) first
    runs: list[str]  # the registered run of each iteration
    seed_run: str  # the primer (or base) every iteration restarts from
    stopped: str | None = None  # why the loop ended early, if it did
    registry_root: str = ""
    primer: dict = field(default_factory=dict)  # the primer run's summary, when this loop trained it

    def frame(self):
        """One row per iteration: data kept, steps, accuracy overall and per difficulty, seconds."""
        import pandas as pd

        cols = ["iteration", "tried", "correct", "rationalized", "used_fraction", "steps", "accuracy"]
        extra = [
            "resampled",
            "faithful_correct",
            "faithful_rationalized",
            "unworked_correct",
            "unworked_rationalized",
        ]
        extra = [k for k in extra if any(k in s for s in self.iterations)]
        return pd.DataFrame(
            {
                **{c: s.get(c) for c in cols + extra},
                **{f"acc_d{d}": a for d, a in s["by_difficulty"].items()},
                "seconds": s.get("seconds"),
            }
            for s in self.iterations
        )

    def eval_rows(self, iteration: int) -> list[dict]:
        """The held-out completions of one iteration (question, answer, completion, correct, difficulty)."""
        return read_jsonl(Path(self.registry_root) / self.runs[iteration] / "eval.jsonl")

    def work_frame(self):
        """Per iteration and difficulty: accuracy, the share of held-out answers that show any work before the
        answer line, the share that is right *and* shows work, and (tasks that can check each step) the share
        right with every step right. STaR's answer-only filter cannot tell a worked answer from a bare one."""
        import pandas as pd

        out = []
        for i in range(len(self.runs)):
            by = {}
            for row in self.eval_rows(i):
                by.setdefault(row["difficulty"], []).append(row)
            for d, rows in sorted(by.items()):
                worked = [r for r in rows if split_rationale(r["completion"]).strip()]
                out.append(
                    {
                        "iteration": i,
                        "difficulty": d,
                        "n": len(rows),
                        "accuracy": sum(r["correct"] for r in rows) / len(rows),
                        "shows_work": len(worked) / len(rows),
                        "correct_with_work": sum(r["correct"] for r in worked) / len(rows),
                        "correct_faithful": (
                            sum(r["correct"] and r["faithful"] for r in rows) / len(rows)
                            if all("faithful" in r for r in rows)
                            else float("nan")
                        ),
                    }
                )
        return pd.DataFrame(out)

    def faithful_vector(self, iteration: int, digits=(2, 3, 4)) -> list[float]:
        """Per held-out problem answered right (difficulty in `digits`): 1.0 when every step of its scratchpad is
        right too, else 0.0. Empty when the task cannot check steps."""
        rows = [r for r in self.eval_rows(iteration) if r["correct"] and r["difficulty"] in digits]
        return [float(r["faithful"]) for r in rows] if all("faithful" in r for r in rows) else []

    def before_after(self, difficulty: int | None = None, n: int = 3) -> list[dict]:
        """Held-out questions with the seed model's completion and the last iteration's, fixed ones first."""
        pairs = [
            {
                "question": a["question"],
                "answer": a["answer"],
                "before": a["completion"],
                "before_correct": a["correct"],
                "after": b["completion"],
                "after_correct": b["correct"],
            }
            for a, b in zip(self.eval_rows(0), self.eval_rows(len(self.runs) - 1))
            if difficulty is None or a["difficulty"] == difficulty
        ]
        return sorted(pairs, key=lambda p: (p["before_correct"], not p["after_correct"]))[:n]

    def timing(self) -> dict:
        """Wall-clock seconds per stage (primer, iteration 0 = its evaluation, 1..n) and in all; CPU seconds."""
        stages = {"primer": self.primer.get("seconds", 0.0)}
        stages |= {f"iteration {s['iteration']}": s.get("seconds", 0.0) for s in self.iterations}
        cpu = self.primer.get("cpu_seconds", 0.0) + sum(s.get("cpu_seconds", 0.0) for s in self.iterations)
        return {**stages, "total": sum(stages.values()), "total_cpu": cpu}

    def say(self) -> str:
        lines = [
            f"{r}: accuracy {s['accuracy']:.1%}"
            + (
                f", trained on {s['used_fraction']:.0%} of the train set"
                if "used_fraction" in s
                else " (seed)"
            )
            for r, s in zip(self.runs, self.iterations)
        ]
        return "\n".join(lines + ([f"stopped early: {self.stopped}"] if self.stopped else []))

    # --- plots ------------------------------------------------------------------------------------------------

    def plot(self, ax=None):
        """Held-out accuracy per iteration, one line per difficulty (the paper's arithmetic figure) plus overall."""
        import matplotlib.pyplot as plt

        from nbkit.plots import caption

        df = self.frame()
        ax = ax or plt.subplots(figsize=(6.5, 4))[1]
        unit = "-digit" if self.config.task == "arithmetic" else " (difficulty)"
        for col in [c for c in df.columns if c.startswith("acc_d")]:
            ax.plot(df["iteration"], df[col], marker="o", label=f"{col[5:]}{unit}")
        ax.plot(df["iteration"], df["accuracy"], "k--", marker="s", label="overall")
        ax.set(xlabel="STaR iteration (0 = seed model)", ylabel="held-out accuracy", ylim=(-0.03, 1.03))
        ax.set_title(f"STaR on {self.config.task}\n{caption(self.config.profile)}", fontsize=9)
        ax.set_xticks(list(df["iteration"]))
        ax.legend(fontsize=8)
        return ax

    def plot_work(self, ax=None, title: str = "Right answers, with and without a rationale"):
        """Per difficulty and iteration: held-out accuracy (solid) and the share right *with* work shown (dashed),
        or, where the task checks every step, right with every step right (dashed). Where the lines part, the
        model answers without its scratchpad, or with a wrong one."""
        import matplotlib.pyplot as plt

        from nbkit.plots import caption

        df = self.work_frame()
        ax = ax or plt.subplots(figsize=(6.5, 4))[1]
        unit = "-digit" if self.config.task == "arithmetic" else ""
        steps = bool(df["correct_faithful"].notna().all())
        inner, what = (
            ("correct_faithful", "every step right") if steps else ("correct_with_work", "work shown")
        )
        for d, part in df.groupby("difficulty"):
            line = ax.plot(part["iteration"], part["accuracy"], marker="o", label=f"{d}{unit}: right")[0]
            dashed = dict(ls="--", marker="x", color=line.get_color(), label=f"{d}{unit}: right, {what}")
            ax.plot(part["iteration"], part[inner], **dashed)
        ax.set(
            xlabel="STaR iteration (0 = seed model)", ylabel="share of held-out problems", ylim=(-0.03, 1.03)
        )
        ax.set_title(f"{title}\n{caption(self.config.profile)}", fontsize=9)
        ax.set_xticks(sorted(df["iteration"].unique()))
        ax.legend(fontsize=7)
        return ax

    def plot_kept(self, ax=None):
        """Problems kept for training per iteration: solved on the model's own, and rationalized with the hint."""
        import matplotlib.pyplot as plt

        from nbkit.plots import caption

        frame = self.frame()
        data = frame[frame["iteration"] > 0]
        ax = ax or plt.subplots(figsize=(6.5, 4))[1]
        retried = data["resampled"].fillna(0) if "resampled" in data else 0 * data["correct"]
        ax.bar(data["iteration"], data["correct"] - retried, label="correct on its own, first try")
        if retried.any():
            ax.bar(data["iteration"], retried, bottom=data["correct"] - retried, label="correct on a retry")
        ax.bar(data["iteration"], data["rationalized"], bottom=data["correct"], label="rationalized (hint)")
        ax.axhline(self.config.problems_per_iteration, color="k", lw=0.8, ls=":", label="train set")
        ax.set(xlabel="STaR iteration", ylabel="problems kept for training", xticks=list(data["iteration"]))
        ax.set_title(f"training data kept per iteration\n{caption(self.config.profile)}", fontsize=9)
        ax.legend(fontsize=8)
        return ax

    def compare_arms(self, arms: dict[str, StarResult]) -> dict:
        """Side by side at the last iteration every arm reached: data kept, rationalizations and accuracy per digit
        count, for this loop and each ablation arm (label -> StarResult)."""
        n = min([len(self.iterations)] + [len(arm.iterations) for arm in arms.values()]) - 1
        rows = {f"this loop (keep={self.config.keep})": self.iterations[n]}
        rows |= {label: arm.iterations[n] for label, arm in arms.items()}
        return {
            label: {
                "train set used": f"{s.get('used_fraction', 0):.0%}",
                "rationalized": s.get("rationalized", 0),
                "of which right at every step": s.get("faithful_rationalized", "-"),
                "of which bare answers": s.get("unworked_rationalized", "-"),
                "held-out accuracy": f"{s['accuracy']:.0%}",
                **{f"{d}-digit": f"{a:.0%}" for d, a in s["by_difficulty"].items()},
            }
            for label, s in rows.items()
        }

    # --- claims -----------------------------------------------------------------------------------------------

    def correct_vector(self, iteration: int, difficulty: int | None = None) -> list[float]:
        """Per held-out problem 1.0 / 0.0, in the evaluation's fixed order (the same problems every iteration)."""
        rows = self.eval_rows(iteration)
        return [float(r["correct"]) for r in rows if difficulty is None or r["difficulty"] == difficulty]

    def claim_accuracy_rises(self, iteration: int = -1):
        """Paper: held-out accuracy rises over STaR iterations. Paired over the held-out problems, seed vs
        `iteration`."""
        from nbkit.claims import paired

        i = iteration % len(self.runs)
        what = f"held-out accuracy, iteration {i} minus the seed model's"
        return paired(self.correct_vector(i), self.correct_vector(0), what)

    def claim_difficulty_rises(self, difficulty: int, iteration: int = 1):
        """Paper (arithmetic figure): the loop teaches longer sums than the seed could do. Paired over the held-out
        problems of one difficulty, seed vs `iteration`."""
        from nbkit.claims import paired

        i = iteration % len(self.runs)
        what = f"{difficulty}-digit accuracy, iteration {i} minus the seed model's"
        return paired(self.correct_vector(i, difficulty), self.correct_vector(0, difficulty), what)

    def claim_climb(self, difficulty: int):
        """The paper's curriculum: longer sums keep improving after the first iteration. Paired over the held-out
        problems of one difficulty, iteration 1 vs the last."""
        from nbkit.claims import paired

        last = len(self.runs) - 1
        what = f"{difficulty}-digit accuracy, iteration {last} minus iteration 1"
        return paired(self.correct_vector(last, difficulty), self.correct_vector(1, difficulty), what)

    def claim_beats_control(self, control: StarResult, difficulty: int):
        """By the paper's mechanism: iteration 1, trained on the model's own rationales plus the primer's rows, beats
        the seed model trained as long on the primer's rows alone (`run.replay_control`). Paired over the held-out
        problems of one difficulty."""
        from nbkit.claims import paired

        if control.iterations[-1].get("n_test") != self.iterations[1].get("n_test"):
            raise ValueError("the control was evaluated on other held-out problems than this loop")
        what = (
            f"{difficulty}-digit accuracy after iteration 1 minus the primer trained as long on its own rows"
        )
        return paired(self.correct_vector(1, difficulty), control.correct_vector(1, difficulty), what)

    def claim_faithful(self, iteration: int, target: float = 0.9):
        """The kept data are rationales: of the right 2-4 digit held-out answers of `iteration`, at least `target`
        carry a scratchpad right at every step (a level, with its Wilson interval and binomial test)."""
        from nbkit.claims import share

        what = (
            f"right 2-4 digit answers of iteration {iteration} with every step right, at least {target:.0%}"
        )
        return share(self.faithful_vector(iteration), target, what)

    def target_claims(self, levels: dict[int, float] | None = None, faithful: float = 0.9) -> list:
        """The cpu profile's targets (not the paper's claims): held-out accuracy of the last iteration at least
        `levels` per digit count (default 3-digit 50%, 4-digit 20%), and `faithful` of the right 2-4 digit answers
        with every step right in every iteration, each a level with its interval."""
        from nbkit.claims import share

        last, out = len(self.runs) - 1, []
        digits = set(self.config.task_args.get("digits", []))
        for d, level in (levels or {3: 0.5, 4: 0.2}).items():
            if d in digits and last > 0:
                what = f"{d}-digit accuracy of iteration {last}, at least {level:.0%}"
                out.append(share(self.correct_vector(last, d), level, what))
        out += [self.claim_faithful(i, faithful) for i in range(1, last + 1) if self.faithful_vector(i)]
        return out

    def train_set(self) -> Counter:
        """The train problems every iteration went over, drawn again from the config (no model needed), as
        {problem_key: count}."""
        task = build_task(self.config)
        plain, hinted = seed_examples(self.config, task)
        return Counter(problem_key(task.chat(ex)) for ex in train_problems(self.config, task, plain + hinted))

    def kept(self, iteration: int) -> Counter:
        """The train problems iteration `iteration` trained on (its rationales.jsonl, solved directly or
        rationalized; replayed primer rows left out), as {problem_key: count}."""
        rows = read_jsonl(Path(self.registry_root) / self.runs[iteration] / "rationales.jsonl")
        return Counter(problem_key(r["prompt"]) for r in rows if r.get("source", "direct") != "primer")

    def claim_rationalization_uses_more(self, without: StarResult, iteration: int = 1):
        """Paper (86.7% vs 69.7% on CommonsenseQA): rationalization trains on more of the train set.

        Paired over the train problems, problem by problem (by prompt): 1.0 where an arm trained on the problem in
        `iteration`, else 0.0. Both arms must have gone over the same train problems (checked). Nothing assumes the
        kept sets are nested: an arm whose model has drifted may solve directly a problem the other could not.
        Raises a one-line ValueError when the arms cannot be paired. -> Claim
        """
        from nbkit.claims import paired

        train = self.train_set()
        if without.train_set() != train:
            raise ValueError("the two arms went over different train problems; compare arms of one train set")
        if sum(train.values()) != self.iterations[iteration].get("tried", sum(train.values())):
            raise ValueError(f"{self.runs[iteration]} tried other train problems than its config draws now")
        kept = [arm.kept(iteration) for arm in (self, without)]
        for arm, k in zip((self, without), kept):
            if k - train:
                raise ValueError(
                    f"{arm.runs[iteration]} kept {sum((k - train).values())} problems not in the train set"
                )
        pairs = [  # the copies of a problem drawn twice are interchangeable: kept ones first in both arms
            (float(i < kept[0][key]), float(i < kept[1][key]))
            for key, m in sorted(train.items())
            for i in range(m)
        ]
        what = f"share of the train set kept in iteration {iteration}, with rationalization minus without"
        return paired([w for w, _ in pairs], [o for _, o in pairs], what)

    def claims(self, without: StarResult | None = None) -> list:
        """The notebook's claims: accuracy rises; rationalization keeps more of the train set (against the arm
        `without` it); 3-digit sums after iteration 1, and every digit count of 3 or more at the last iteration,
        against the seed model; those digit counts still rising after iteration 1 (the curriculum). A loop that
        finished no iteration gives one DEPARTS line."""
        if len(self.runs) < 2:
            return [f"DEPARTS: no iteration finished ({self.stopped})"]
        out = [self.claim_accuracy_rises()]
        if without is not None and len(without.runs) > 1:
            n = min(len(self.runs), len(without.runs)) - 1
            try:
                out.append(self.claim_rationalization_uses_more(without, iteration=n))
            except ValueError as e:
                out.append(f"NOT CHECKED: rationalization keeps more of the train set: {e}")
        digits = sorted(self.config.task_args.get("digits", [])) if self.config.task == "arithmetic" else []
        if digits:
            out.append(self.claim_difficulty_rises(min(3, digits[-1]), iteration=1))
            longer = [d for d in digits if d >= 3]
            out += [self.claim_difficulty_rises(d, iteration=-1) for d in longer]
            if len(self.runs) > 2:
                out += [self.claim_climb(d) for d in longer]
        return out


def plot_side_by_side(results: dict[str, StarResult]):
    """One panel per loop (label -> StarResult), each its `plot_work`: accuracy per digit count and iteration, and
    the share right with every step right. The faithful loop beside the answer-only arm shows what each learned."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.2), sharey=True, squeeze=False)
    for ax, (label, result) in zip(axes[0], results.items()):
        result.plot_work(ax=ax, title=label)
    fig.tight_layout()
    return fig
