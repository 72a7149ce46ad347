"""The live training view: throttled drawing, the headless final figure, trainers feeding it, notebook glue."""

import base64
from types import SimpleNamespace

from nbkit.live import LiveCallback, LiveView, attach, current_view


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _view(clock, draw_cost=0.0, **kw):
    shown = []

    def sink(bundle, text):
        clock.t += draw_cost
        shown.append((bundle, text))

    return LiveView(display=sink, clock=clock, headless=False, **kw), shown


def test_draws_at_most_once_per_interval():
    clock = Clock()
    view, shown = _view(clock)
    view.start_phase("SFT")
    for step in range(1, 101):  # 10 s of training at 0.1 s a step
        clock.t += 0.1
        view.log(step, {"loss": 1 / step})
    assert 9 <= len(shown) <= 11
    assert shown[0][0]["image/svg+xml"].startswith("<svg") and "loss [SFT]" in shown[0][0]["image/svg+xml"]


def test_a_slow_draw_stretches_the_interval_to_keep_its_share_small():
    clock = Clock()
    view, shown = _view(
        clock, draw_cost=0.3, budget_share=0.03
    )  # 0.3 s a frame -> one frame per 10 s at most
    view.start_phase("SFT")
    for step in range(1, 301):
        clock.t += 0.1
        view.log(step, {"loss": 1.0})
    drawing = 0.3 * len(shown)
    assert drawing / clock.t <= 0.035
    assert len(shown) >= 2


def test_headless_draws_only_when_a_trainer_ends():
    clock = Clock()
    view, shown = _view(clock)
    view.headless = True
    view.start_phase("GRPO")
    for step in range(1, 50):
        clock.t += 1.0
        view.log(step, {"loss": 0.1, "reward": step / 50, "frac_reward_zero_std": 0.5})
    assert shown == []
    view.flush()
    assert len(shown) == 1
    png = base64.b64decode(shown[0][0]["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    view.flush()  # nothing new: no second figure
    assert len(shown) == 1


def test_trainers_of_one_cell_share_the_step_axis_and_notes_land_at_the_current_step():
    view, _ = _view(Clock())
    view.start_phase("SFT primer")
    for step in range(1, 6):
        view.log(step, {"loss": 2.0, "mean_token_accuracy": 0.5})
    view.note("held-out accuracy", 0.4)
    view.start_phase("SFT iter1")
    for step in range(1, 4):
        view.log(step, {"loss": 1.0})
    assert [x for x, _ in view.series["loss [SFT iter1]"]] == [6, 7, 8]
    assert view.series["held-out accuracy"] == [(5, 0.4)]
    assert view.phases == [(0, "SFT primer"), (5, "SFT iter1")]
    assert "mean_token_accuracy [SFT primer]" in view.series


def test_samples_keep_the_latest_few_as_one_line_each():
    view, _ = _view(Clock(), n_samples=2)
    view.add_samples([("q1", "a\nb", 1.0), ("q2", "x", 0.0), ("q3", "y" * 200, 0.5)])
    text = view.samples_text()
    assert "q1" not in text and "q2" in text and "q3" in text
    assert all(len(line) < 160 for line in text.splitlines())


def test_grpo_completions_and_rewards_reach_the_view():
    class FakeGrpo:  # what GRPOTrainer keeps in self._logs
        _logs = {
            "prompt": ["What is 2 + 3?", "What is 4 + 4?"],
            "completion": ["Answer: 5", "Answer: 9"],
            "rewards": {"reward": [1.0, 0.0]},
        }

    view, _ = _view(Clock())
    cb = LiveCallback(view, FakeGrpo(), label="GRPO")
    cb.on_log(None, SimpleNamespace(is_world_process_zero=True, global_step=1), None, logs={"loss": 0.5})
    assert list(view.samples) == [("What is 2 + 3?", "Answer: 5", 1.0), ("What is 4 + 4?", "Answer: 9", 0.0)]


def test_outside_a_notebook_nothing_is_attached():
    class Trainer:
        callbacks = []

        def add_callback(self, cb):
            self.callbacks.append(cb)

    t = Trainer()
    attach(t)
    assert current_view() is None and t.callbacks == []


def test_a_real_sft_run_feeds_the_view(tmp_path):
    from nbkit.models import load
    from nbkit.tasks import Arithmetic
    from nbkit.train import sft

    model, tok = load("tiny")
    task = Arithmetic(digits=(1,))
    records = [task.sft_record(ex) for ex in task.train(8)]
    clock = Clock()
    view, shown = _view(clock)
    sft(
        model,
        tok,
        records,
        steps=3,
        batch_size=4,
        callbacks=[LiveCallback(view, label="SFT")],
        disable_tqdm=True,
    )
    assert [x for x, _ in view.series["loss [SFT]"]] == [1, 2, 3]
    assert "image/png" in shown[-1][0]  # the figure drawn when training ends


def test_a_trainer_that_ends_right_after_a_frame_still_leaves_the_final_figure():
    clock = Clock()
    view, shown = _view(clock)
    view.start_phase("SFT")
    for step in range(1, 4):
        clock.t += 2.0  # slow steps: every log draws a frame
        view.log(step, {"loss": 1.0})
    assert "image/svg+xml" in shown[-1][0]
    view.flush()
    assert "image/png" in shown[-1][0]
