"""What an RFT run gives back: `RftResult` (the registry run of one arm, its tables, plots, claims and summary) and
the paper's claims, each with a bootstrap 95% interval over probe prompts (`nbkit.claims`) where it is an estimate,
and, where paired, the sign-flip test's p (the verdict needs both). Arms are paired by the probes' questions.

    result = run(cfg, registry)
    train, probes, groups = result.tables()        # TRL's logs, the probes, GRPO's groups: one row per step
    result.frame()                                 # the probe scalars per step (the CLI's --out)
    result.claims()                                # what this arm checks alone; result.plot_*(): its figures
    print(result.claim_rl_raises_reward())         # "AGREES: ... probe reward, step 16 minus step 0: +0.50 [...]"
    claim_warmstart_helps(alone, warm)             # two arms with the same budget and probe prompts
"""

from __future__ import annotations

from functools import cached_property

from nbkit.experiments.rft import plots, signal_map
from nbkit.experiments.rft.config import RftConfig

PROBE_SCALARS = (
    "mean_reward",
    "mean_std",
    "frac_zero_std",
    "frac_zero_std_all_right",
    "frac_zero_std_all_wrong",
)


class RftResult:
    """One finished RFT arm. run: its registry Run; config: its RftConfig (read back from the run if not given)."""

    def __init__(self, run, config: RftConfig | None = None):
        self.run, self._config = run, config

    def __repr__(self) -> str:
        return f"RftResult({self.name!r})"

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def summary(self) -> dict:
        return self.run.summary

    @cached_property
    def config(self) -> RftConfig:
        from nbkit.config import from_dict

        return self._config if self._config is not None else from_dict(self.run.config, RftConfig)

    def tables(self):
        """(train, probes, groups): see `run_tables`."""
        return self._tables

    @cached_property
    def _tables(self):
        return run_tables(self.run)

    train = property(lambda self: self._tables[0], doc="TRL's scalars, one row per RFT step")
    probes = property(
        lambda self: self._tables[1], doc="the probes, one row per probe step (per-prompt lists)"
    )
    groups = property(lambda self: self._tables[2], doc="GRPO's groups, one row per step (per-prompt lists)")

    def frame(self):
        """The probe scalars per probe step (mean reward, mean std, zero-std share and its split), with the run."""
        import pandas as pd

        probes = self.probes
        if probes.empty:
            return pd.DataFrame(columns=["run", "step", *PROBE_SCALARS])
        out = probes[[f"probe/{c}" for c in PROBE_SCALARS]].rename(columns=lambda c: c.removeprefix("probe/"))
        return out.reset_index().assign(run=self.name)[["run", "step", *PROBE_SCALARS]]

    def say(self) -> str:
        """The CLI's report: "run NAME (PATH):", then one line per summary value."""
        lines = [f"run {self.name} ({self.run.path}):"]
        for k, v in self.summary.items():
            lines.append(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
        return "\n".join(lines)

    # ---- plots and claims of this arm alone
    def scaling_table(self):
        """Per-prompt gradient norms under scale_rewards "group" and "none" at step 0 (`signal_map.scaling_table`)."""
        return signal_map.scaling_table(self.probes.iloc[0])

    def plot_signal_map(self, ax_map, ax_gain=None, title: str = "") -> dict:
        """This arm's signal map, and its reward gain against starting std on `ax_gain` (`plots.plot_signal_map`)."""
        return plots.plot_signal_map(self.probes, ax_map, ax_gain, title=title)

    def plot_scaling(self, axes) -> None:
        """Gradient norm against reward std under the two scalings, on two axes (`plots.plot_scaling`)."""
        plots.plot_scaling(self.scaling_table(), axes)

    def plot_gradient_scaling(self, where: str = ""):
        """The figure of `plot_scaling`, captioned with `where` (`plots.plot_gradient_scaling`)."""
        return plots.plot_gradient_scaling(self.scaling_table(), where)

    def claim_rl_raises_reward(self, label: str | None = None):
        return claim_rl_raises_reward(self.probes, label or self.name)

    def claim_zero_std_zero_gradient(self, scale: str = "group") -> str:
        """`claim_zero_std_zero_gradient` on the gradient norms measured through TRL's loss at step 0, under
        scale_rewards `scale` ("group" or "none")."""
        table = self.scaling_table()
        return claim_zero_std_zero_gradient(table["std"], table[f"grad_{scale}"])

    def claims(self) -> list:
        """The claims this arm can check alone: RL raises the probe reward, and zero reward std gives zero gradient
        under both advantage scalings (when gradient norms were measured). Claims of several arms are functions:
        `claim_warmstart_helps`, `claim_low_std_slow_growth`."""
        if self.probes.empty:
            return ["NOT CHECKED: no probe was logged (n_probe = 0)"]
        out = [self.claim_rl_raises_reward()]
        if "probe/grad_norm_group" in self.probes:
            out += [f"{scale}: {self.claim_zero_std_zero_gradient(scale)}" for scale in ("group", "none")]
        return out


def _probes(x):
    """The probes frame of an RftResult, or `x` itself (already a probes frame)."""
    return x.probes if isinstance(x, RftResult) else x


def run_tables(run):
    """(train, probes, groups) DataFrames from a finished RFT run in the registry, each indexed by step.

    train: one row per RFT step with TRL's scalars (reward, reward_std, frac_reward_zero_std, grad_norm, ...) and
    ours (frac_reward_zero_std_all_right / _all_wrong, filter/...). probes: one row per probe with the scalars and the
    per-prompt lists probe/prompt_mean, probe/prompt_std (and probe/grad_norm at step 0). groups: one row per step
    with the per-prompt lists groups/prompt_mean, groups/prompt_std of the groups GRPO generated at that step.
    """
    import pandas as pd

    rows = run.metrics()
    frames = [
        pd.DataFrame([r for r in rows if key in r])
        for key in ("reward_std", "probe/prompt_std", "groups/prompt_std")
    ]
    return tuple(f.set_index("step") if not f.empty else f for f in frames)


def claim_zero_std_zero_gradient(stds, grad_norms) -> str:
    """Razin et al. / GRPO: prompts whose k rewards are all equal (std 0) get zero gradient; the others do not.

    grad_norms: per-prompt norms of the gradient of TRL's own GRPO loss (`probe.prompt_gradient_norms`; nothing is
    forced to zero on the way), so a change in TRL or nbkit that leaks gradient from zero-std groups makes this
    DEPART. Tolerance: none, the norm must be 0.0. With every advantage exactly 0, each gradient entry is
    0 * (finite) = 0 in any float format, so a non-zero norm means a non-zero advantage (TRL's rounding of the mean
    of equal non-0/1 rewards: 0.7 eight times gives 6e-4) or a loss term outside the advantages (an entropy bonus).
    The detail gives the leak's size against the smallest norm with spread. An identity checked on every measured
    prompt, not an estimate, so it needs no interval.

    Example: stds [0, 0.5], grad_norms [0.0, 3.1] -> "AGREES (exact, on every prompt): ..."
    """
    zero = [g for s, g in zip(stds, grad_norms) if s == 0]
    spread = [g for s, g in zip(stds, grad_norms) if s > 0]
    if not zero:
        return "NOT CHECKED: no zero-std prompt was measured"
    detail = f"{len(zero)} zero-std prompts, largest gradient norm {max(zero):.3g}"
    if spread:
        detail += f"; {len(spread)} prompts with spread, smallest gradient norm {min(spread):.3g}"
    leaks = sum(g != 0.0 for g in zero)
    if leaks:
        detail += f"; {leaks} zero-std prompts leak gradient"
        if spread and min(spread) > 0:
            detail += f", largest at {max(zero) / min(spread):.2g} x the smallest with spread"
    ok = not leaks and all(g > 0 for g in spread)
    return f"{'AGREES' if ok else 'DEPARTS'} (exact, on every prompt): {detail}"


def probe_questions(probes) -> list[str]:
    """The probe prompts' identity, in probe order: the questions the probes recorded ("probe/questions"), else
    "probe 0", "probe 1", ... (a run that did not record them: the probe order). Raises when the first and the
    last probe of the run asked different questions (they cannot be paired).

    Example: a probes frame whose rows all have questions ["1 + 1", "2 + 1"] -> ["1 + 1", "2 + 1"]
    """
    probes = _probes(probes)
    first, last = probes.iloc[0], probes.iloc[-1]
    if "probe/questions" not in probes:
        return [f"probe {i}" for i in range(len(first["probe/prompt_mean"]))]
    if list(first["probe/questions"]) != list(last["probe/questions"]):
        raise ValueError("the first and last probes of this run asked different questions; cannot pair them")
    return list(first["probe/questions"])


def _first_last(probes):
    """(start means, start stds, end means) per probe prompt: the first and the last probe of a run (an RftResult
    or its probes frame), checked to be the same prompts."""
    probes = _probes(probes)
    probe_questions(probes)
    first, last = probes.iloc[0], probes.iloc[-1]
    return list(first["probe/prompt_mean"]), list(first["probe/prompt_std"]), list(last["probe/prompt_mean"])


def claim_rl_raises_reward(probes, label: str = "RL"):
    """The held-out probe reward rises during RL: per probe prompt, mean reward at the last probe minus at the first
    (step 0, after any warm-start), with a bootstrap 95% interval over the prompts and the sign-flip test. probes:
    an RftResult or its `probes` frame.
    -> nbkit.claims.Claim"""
    from nbkit.claims import paired

    probes = _probes(probes)
    m0, _, m1 = _first_last(probes)
    return paired(m1, m0, f"{label}: probe reward, step {probes.index[-1]} minus step {probes.index[0]}")


def claim_low_std_slow_growth(start_means, start_stds, end_means, prompts=None):
    """Razin et al.: an input whose reward std is small under the model gains reward slowly, even when its reward is
    far from the best. Mean reward gain of prompt rows that started with spread (std > 0) minus that of rows that
    started all wrong (std 0, reward 0), with a bootstrap interval over prompts. prompts: each row's prompt identity
    (`start_and_end` gives it): the rows of one prompt, probed in several arms, are drawn together, since they are
    not independent evidence; None: every row is its own prompt. -> Claim (or a NOT CHECKED line)

    Example: start_means [0, 0, 0.5], start_stds [0, 0, 0.5], end_means [0, 0.25, 1] -> effect 0.5 - 0.125
    """
    from nbkit.claims import unpaired

    rows = list(
        zip(start_means, start_stds, end_means, prompts if prompts is not None else range(len(start_means)))
    )
    low = [(e - m, q) for m, s, e, q in rows if s == 0 and m == 0]
    high = [(e - m, q) for m, s, e, q in rows if s > 0]
    if not low or not high:
        return (
            f"NOT CHECKED: need prompts of both kinds ({len(low)} started all wrong, {len(high)} with spread)"
        )
    (gain_high, ids_high), (gain_low, ids_low) = zip(*high), zip(*low)
    what = (
        f"reward gain of {len(high)} prompts that started with spread minus {len(low)} that started all wrong"
    )
    if prompts is not None:
        what += f" (rows of {len(set(ids_high) | set(ids_low))} prompts, each prompt resampled whole)"
    return unpaired(gain_high, gain_low, what, clusters=(ids_high, ids_low))


def claim_warmstart_helps(alone, warm) -> list:
    """Razin et al.: a short SFT warm-start lowers the share of zero-std inputs, after which RL gains more. alone,
    warm: two RftResults (or their probes) with the same RFT budget and probe prompts. Three paired
    claims over probe prompts: zero std at the start (alone minus warm), RL's own gain (warm's minus alone's) and the
    reward at the end (warm minus alone). -> [Claim, Claim, Claim], or [a NOT CHECKED line] when the two arms'
    probes are not the same questions in the same order (or did not record them)."""
    from nbkit.claims import paired

    if not all("probe/questions" in _probes(arm) for arm in (alone, warm)):
        return ["NOT CHECKED: the probes did not record their questions, so the two arms cannot be paired"]
    q_alone, q_warm = probe_questions(alone), probe_questions(warm)
    if q_alone != q_warm:
        differ = sum(a != w for a, w in zip(q_alone, q_warm)) + abs(len(q_alone) - len(q_warm))
        return [
            f"NOT CHECKED: the two arms probed different prompts ({differ} of {max(len(q_alone), len(q_warm))} "
            "positions differ); pair arms probed on the same questions in the same order"
        ]
    a0, a_std, a1 = _first_last(alone)
    w0, w_std, w1 = _first_last(warm)
    zero_a, zero_w = [float(s == 0) for s in a_std], [float(s == 0) for s in w_std]
    gain_a = [e - m for m, e in zip(a0, a1)]
    gain_w = [e - m for m, e in zip(w0, w1)]
    return [
        paired(
            zero_a, zero_w, "zero-std share of probe prompts at the start of RL, alone minus warm-started"
        ),
        paired(gain_w, gain_a, "reward gain during RL, warm-started minus alone"),
        paired(w1, a1, "probe reward after RL, warm-started minus alone"),
    ]


def start_and_end(results) -> tuple[list, list, list, list]:
    """(start means, start stds, end means, prompts) per probe prompt, pooled over several arms (RftResults or
    probes frames), for `claim_low_std_slow_growth(*start_and_end(arms))`. prompts: each row's question (see
    `probe_questions`), so that one prompt's rows in several arms count once. Runs that did not record their
    questions are keyed by probe order, which is the same prompts in every arm of one config only if every arm
    probed as many; else this raises."""
    start_means, start_stds, end_means, prompts, unnamed = [], [], [], [], set()
    for probes in map(_probes, results):
        m0, s0, m1 = _first_last(probes)
        start_means, start_stds, end_means = start_means + m0, start_stds + s0, end_means + m1
        prompts += probe_questions(probes)
        if "probe/questions" not in probes:
            unnamed.add(len(m0))
    if len(unnamed) > 1:
        raise ValueError(
            f"arms that did not record their probe questions probed {sorted(unnamed)} prompts; cannot pool"
        )
    return start_means, start_stds, end_means, prompts


# ------------------------------------------------------------------------------------------------ arms side by side


def probe_reward_table(results: dict):
    """Held-out probe reward per probe step (rows) and arm (columns). results: {label: RftResult}."""
    import pandas as pd

    return pd.DataFrame({label: r.probes["probe/mean_reward"] for label, r in results.items()})


SUMMARY_COLUMNS = [
    "probe_reward_start",
    "probe_reward_end",
    "probe_zero_std_start",
    "probe_zero_std_end",
    "train_reward_first5",
    "train_reward_last5",
    "seconds_per_step",
]


def summary_table(results: dict):
    """One row per arm: probe reward and zero-std share at the start and the end, training reward, time per step,
    and the share of trained groups with reward spread (with a zero-std filter: the groups it kept; else 1 minus
    TRL's frac_reward_zero_std). results: {label: RftResult}."""
    import pandas as pd

    table = pd.DataFrame(
        {label: {c: r.summary.get(c) for c in SUMMARY_COLUMNS} for label, r in results.items()}
    ).T
    table["groups_with_spread_trained"] = [
        r.train["filter/informative_groups"].mean()
        if "filter/informative_groups" in r.train
        else 1 - r.train["frac_reward_zero_std"].mean()
        for r in results.values()
    ]
    return table
