"""Training you can watch: a live view of every training cell, in the notebook itself (no wandb, no browser tab).

Inside a Jupyter kernel every trainer nbkit builds (SFT, DPO, GRPO, and so the STaR loop, the RFT arms and the
budget sweep) gets a `LiveCallback` through `nbkit.train.with_defaults`. All trainers that run in one cell draw into
one view, one after the other on a shared step axis:

- loss against steps; reward or accuracy where the trainer logs one (GRPO `reward`, DPO `rewards/accuracies`, SFT
  `mean_token_accuracy`), and notes such as STaR's held-out accuracy per iteration;
- for GRPO, the share of groups whose k rewards are all equal (TRL's `frac_reward_zero_std`: zero gradient);
- the latest few sampled completions with their rewards (GRPO's groups, STaR's rationales).

The view is an `IPython.display` handle updated in place. While a trainer runs it shows a plain SVG frame at most
about once a second (a frame takes about a millisecond; the interval also stretches so that frames never take more
than ~3% of the time); when a trainer ends it draws a matplotlib figure, which stays in the notebook. Headless
(`nbkit report`, which sets NBKIT_HEADLESS=1) it draws only the figures, so the executed notebook keeps the final
one. `benchmarks/live_overhead.py` measures the cost. NBKIT_LIVE=0 turns it off.

    from nbkit.live import LiveView, LiveCallback
    view = LiveView()                                  # or current_view() inside a notebook cell
    trainer.add_callback(LiveCallback(view, trainer))
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections import deque
from html import escape

from transformers import TrainerCallback

# what each trainer logs that is worth watching, besides the loss
SCORES = ("reward", "rewards/accuracies", "mean_token_accuracy")
ZERO_STD = "frac_reward_zero_std"
MAX_POINTS = 400  # per series drawn: enough for a curve, cheap to draw
COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
]  # matplotlib's


class LiveView:
    """One cell's figure. `display(mime_bundle, samples_text)` shows it; `clock` is time.perf_counter (tests pass a
    fake one).

    min_interval: seconds between frames; the interval also stretches to frame_seconds / budget_share, so frames
    take at most that share of the time. headless: no frames, only the figure drawn by `flush` and `note`.
    """

    def __init__(
        self,
        display=None,
        min_interval: float = 1.0,
        budget_share: float = 0.03,
        headless: bool | None = None,
        clock=time.perf_counter,
        n_samples: int = 4,
    ):
        self.display = display or _ipython_display()  # display(mime bundle, samples text)
        self.min_interval, self.budget_share, self.clock = min_interval, budget_share, clock
        self.headless = os.environ.get("NBKIT_HEADLESS") == "1" if headless is None else headless
        self.series: dict[str, list[tuple[int, float]]] = {}  # "loss [SFT]" -> [(step, value)]
        self.phases: list[tuple[int, str]] = []  # (first step, label)
        self.offset = 0  # steps of the phases before the current one
        self.last_step = 0
        self.samples: deque = deque(maxlen=n_samples)  # (prompt, completion, reward)
        self.last_draw, self.draw_seconds, self.draws = -1e9, 0.0, 0
        self.spent = 0.0  # seconds inside the view's callbacks (benchmarks/live_overhead.py reports it)
        self.dirty = self.stale = False

    # ----------------------------------------------------------------------------------------- recording
    def start_phase(self, label: str) -> None:
        """A new trainer: its steps continue after the last one drawn."""
        self.offset = self.last_step
        self.phases.append((self.offset, label))

    def _label(self) -> str:
        return self.phases[-1][1] if self.phases else ""

    def log(self, step: int, logs: dict) -> None:
        """One trainer log line at the trainer's own `step`."""
        x = self.offset + step
        self.last_step = max(self.last_step, x)
        label = self._label()
        for key in ("loss", *SCORES, ZERO_STD):
            value = logs.get(key)
            if isinstance(value, int | float):
                self.series.setdefault(f"{key} [{label}]" if label else key, []).append((x, float(value)))
                self.dirty = self.stale = True
        self.maybe_draw()

    def note(self, name: str, value: float) -> None:
        """A point at the current step, e.g. note("held-out accuracy", 0.43) after a STaR iteration."""
        self.series.setdefault(name, []).append((self.last_step, float(value)))
        self.dirty = self.stale = True
        self.draw(final=True)  # rare (once per STaR iteration) and after the trainer's last figure: show it

    def add_samples(self, rows) -> None:
        """rows: (prompt, completion, reward) triples; the view keeps the latest few."""
        for prompt, completion, reward in rows:
            self.samples.append((_one_line(prompt, 40), _one_line(completion, 90), reward))
        self.dirty = self.stale = True

    # ------------------------------------------------------------------------------------------- drawing
    def maybe_draw(self) -> None:
        if self.headless or not self.dirty:
            return
        interval = max(self.min_interval, self.draw_seconds / self.budget_share)
        if self.clock() - self.last_draw >= interval:
            self.draw(final=False)

    def flush(self) -> None:
        """Draw the final figure if anything changed since the last one (a trainer ended): it stays in the notebook."""
        if self.stale:
            self.draw(final=True)

    def draw(self, final: bool = False) -> None:
        """final: a matplotlib PNG (what stays in the notebook); else a quick SVG frame (about a millisecond)."""
        start = self.clock()
        if final:
            figure = {"image/png": base64.b64encode(self.render_png()).decode("ascii")}
        else:
            figure = {"image/svg+xml": self.render_svg()}
        self.display({**figure, "text/plain": "<nbkit live view>"}, self.samples_text())
        self.last_draw = self.clock()
        if not final:  # the throttle follows the frames' cost; the final figure is drawn once per trainer
            self.draw_seconds = self.last_draw - start
        self.draws += 1
        self.dirty = False  # no frame needed until something changes
        self.stale = self.stale and not final  # a final figure is owed until one is drawn

    def samples_text(self) -> str:
        if not self.samples:
            return ""
        lines = [f"latest sampled completions ({self._label() or 'training'}):"]
        lines += [f"  reward {r:4.2f} | {p:40} | {c}" for p, c, r in self.samples]
        return "\n".join(lines)

    def _title(self) -> str:
        return f"live: {self._label() or 'training'}, step {self.last_step} (all trainers of this cell)"

    def panels(self) -> list[tuple[str, list[tuple[str, list]]]]:
        """[(title, [(series name, points)])]: loss; reward or accuracy; GRPO's zero-std share when logged."""
        kinds = [("loss", lambda k: k.startswith("loss"))]
        kinds.append(("reward / accuracy", lambda k: not k.startswith(("loss", ZERO_STD))))
        if any(k.startswith(ZERO_STD) for k in self.series):
            kinds.append(("zero-std share of groups", lambda k: k.startswith(ZERO_STD)))
        return [
            (title, [(k, _thin(v)) for k, v in self.series.items() if wanted(k)]) for title, wanted in kinds
        ]

    def render_png(self) -> bytes:
        """The figure as PNG bytes (object-oriented matplotlib: no pyplot, so nothing else is shown)."""
        from matplotlib.figure import Figure

        panels = self.panels()
        fig = Figure(figsize=(4.2 * len(panels), 3.0), dpi=72)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, series) in zip(axes, panels):
            for name, points in series:
                xs, ys = zip(*points)
                ax.plot(xs, ys, "o-" if len(points) < 12 else "-", lw=1.2, ms=3, label=name)
            for x, _ in self.phases[1:]:
                ax.axvline(x, color="0.75", lw=0.8, ls=":")
            ax.set_title(title, fontsize=10)
            ax.tick_params(labelsize=8)
            if ax.lines:
                ax.legend(fontsize=7, loc="upper right")  # "best" costs more than the rest of the draw
        fig.suptitle(self._title(), fontsize=10)
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.8, wspace=0.25)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def render_svg(self, w: int = 300, h: int = 170) -> str:
        """The same panels as a plain SVG: polylines, the value range, the step range, a legend."""
        panels = self.panels()
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(panels) + 20}" height="{h + 60}" '
            'font-family="sans-serif" font-size="11">',
            f'<text x="10" y="15" font-size="12">{escape(self._title())}</text>',
        ]
        steps = [x for _, series in panels for _, pts in series for x, _ in pts] or [0, 1]
        x0, x1 = min(steps), max(max(steps), min(steps) + 1)
        for i, (title, series) in enumerate(panels):
            left, top = 10 + i * w + 40, 40
            pw, ph = w - 55, h - 20
            out.append(f'<text x="{left}" y="{top - 6}">{escape(title)}</text>')
            out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
            values = [y for _, pts in series for _, y in pts] or [0.0, 1.0]
            y0, y1 = min(values), max(values)
            y1 = y1 if y1 > y0 else y0 + 1.0

            def xy(x, y, left=left, top=top, pw=pw, ph=ph, y0=y0, y1=y1):
                return f"{left + (x - x0) / (x1 - x0) * pw:.1f},{top + ph - (y - y0) / (y1 - y0) * ph:.1f}"

            for x, _ in self.phases[1:]:
                out.append(
                    f'<polyline points="{xy(x, y0)} {xy(x, y1)}" stroke="#ccc" stroke-dasharray="2,3"/>'
                )
            for j, (name, pts) in enumerate(series):
                color = COLORS[j % len(COLORS)]
                line = " ".join(xy(x, y) for x, y in pts)
                out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>')
                if len(pts) < 12:
                    out += [
                        f'<circle cx="{xy(x, y).split(",")[0]}" cy="{xy(x, y).split(",")[1]}" r="2.5" '
                        f'fill="{color}"/>'
                        for x, y in pts
                    ]
                out.append(
                    f'<text x="{left + 4}" y="{top + 12 + 12 * j}" fill="{color}">{escape(name)}</text>'
                )
            out.append(f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{y1:.3g}</text>')
            out.append(f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{y0:.3g}</text>')
            out.append(f'<text x="{left}" y="{top + ph + 14}">{x0}</text>')
            out.append(f'<text x="{left + pw}" y="{top + ph + 14}" text-anchor="end">step {x1}</text>')
        return "\n".join(out + ["</svg>"])


def _thin(points: list, limit: int = MAX_POINTS) -> list:
    step = max(1, len(points) // limit)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


def _one_line(x, width: int) -> str:
    from nbkit.tasks.base import completion_text

    text = x if isinstance(x, str) else completion_text(x)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------------------------------------ notebook glue


def in_kernel() -> bool:
    """True inside a Jupyter kernel (ipykernel), where display handles reach a notebook."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _ipython_display():
    """display(figure, text): two display handles (figure, samples) made on first use, updated in place after."""
    handles: dict = {}

    def show(figure: dict, text: str) -> None:
        from IPython.display import display

        for key, data in (("figure", figure), ("samples", {"text/plain": text})):
            if key == "samples" and not text:
                continue
            meta = {"nbkit_live": key}
            if key not in handles:
                handles[key] = display(data, raw=True, metadata=meta, display_id=True)
            else:
                handles[key].update(data, raw=True, metadata=meta)

    return show


_current: tuple[int, LiveView] | None = None


def current_view() -> LiveView | None:
    """The live view of the cell now running (one per cell), or None outside a kernel or with NBKIT_LIVE=0."""
    global _current
    if os.environ.get("NBKIT_LIVE", "1") == "0" or not in_kernel():
        return None
    from IPython import get_ipython

    cell = get_ipython().execution_count
    if _current is None or _current[0] != cell:
        _current = (cell, LiveView())
    return _current[1]


def note(name: str, value: float) -> None:
    """Add a point to the running cell's view, if there is one (the STaR loop notes held-out accuracy)."""
    view = current_view()
    if view is not None:
        view.note(name, value)


def record_samples(task, problems: list, texts: list[list[str]]) -> None:
    """Show the latest sampled completions (one per problem) with their reward under `task`, if there is a view."""
    view = current_view()
    if view is not None and texts:
        tail = list(zip(problems, texts))[-view.samples.maxlen :]
        view.add_samples(
            (task.question_text(ex), group[0], task.reward([group[0]], [ex.answer])[0])
            for ex, group in tail
            if group
        )
        view.maybe_draw()


class LiveCallback(TrainerCallback):
    """Feeds a trainer's logs (and, for GRPO, its latest completions and rewards) into a LiveView."""

    def __init__(self, view: LiveView, trainer=None, label: str | None = None):
        self.view, self.trainer = view, trainer
        self.label = label or _trainer_label(trainer)
        self.seen = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.view.start_phase(self.label)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            start = time.perf_counter()
            self._grpo_samples()
            self.view.log(state.global_step, logs)
            self.view.spent += time.perf_counter() - start

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            start = time.perf_counter()
            self.view.flush()
            self.view.spent += time.perf_counter() - start

    def _grpo_samples(self) -> None:
        logs = getattr(
            self.trainer, "_logs", None
        )  # GRPOTrainer keeps its latest prompts/completions/rewards
        if not logs or not logs.get("completion"):
            return
        completions, prompts = list(logs["completion"]), list(logs.get("prompt", []))
        rewards = [sum(r) for r in zip(*logs["rewards"].values())] if logs.get("rewards") else []
        if len(prompts) == len(completions) == len(rewards):
            n = self.view.samples.maxlen
            self.view.add_samples(zip(prompts[-n:], completions[-n:], rewards[-n:]))


def _trainer_label(trainer) -> str:
    if trainer is None:
        return ""
    kind = next(
        (k for k in ("GRPO", "DPO", "SFT") if any(k in c.__name__ for c in type(trainer).__mro__)),
        type(trainer).__name__,
    )
    run = next((cb.run for cb in trainer.callback_handler.callbacks if hasattr(cb, "run")), None)
    name = getattr(run, "name", None)
    return f"{kind} {name}" if name else kind


def attach(trainer) -> None:
    """Give `trainer` the running cell's live view; does nothing outside a notebook kernel or with NBKIT_LIVE=0."""
    view = current_view()
    if view is not None:
        trainer.add_callback(LiveCallback(view, trainer))
