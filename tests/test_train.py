import copy
import subprocess
import sys
from pathlib import Path

import torch

from nbkit.models import load
from nbkit.tasks import Arithmetic
from nbkit.train import sft


def test_a_deep_copy_of_a_trained_model_trains_on_its_own_weights():
    """accelerate leaves a bound `forward` on a prepared model; a deep copy must not keep calling the original."""
    model, tok = load("tiny")
    task = Arithmetic(digits=(1,))
    records = [task.sft_record(ex) for ex in task.train(8)]
    sft(model, tok, records, steps=2, lr=1e-2, batch_size=4, disable_tqdm=True)
    student = copy.deepcopy(model)
    sft(student, tok, records, steps=3, lr=1e-2, batch_size=4, disable_tqdm=True)
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert (model(x).logits - student(x).logits).abs().max() > 1e-3


def test_trainers_share_one_scratch_dir_that_is_gone_after_exit():
    code = (
        "from trl import SFTConfig\n"
        "from nbkit.train import trainer_config\n"
        "a, b = trainer_config(SFTConfig), trainer_config(SFTConfig)\n"
        "assert a.output_dir == b.output_dir and os.path.isdir(a.output_dir)\n"
        "print(a.output_dir)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import os\n" + code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert not Path(out.stdout.strip().splitlines()[-1]).exists()


def test_training_prints_a_bar_but_no_log_dicts_and_the_run_gets_every_metric(capsys):
    class Run:
        rows = []

        def log(self, values, step):
            self.rows.append((step, values))

    model, tok = load("tiny")
    task = Arithmetic(digits=(1,))
    records = [task.sft_record(ex) for ex in task.train(8)]
    for quiet in [True, False]:  # disable_tqdm: transformers prints the dicts itself; else under the bar
        Run.rows = []
        sft(model, tok, records, steps=3, lr=1e-2, batch_size=4, run=Run(), disable_tqdm=quiet)
        out = capsys.readouterr()
        assert "{'loss'" not in out.out + out.err
        assert [step for step, values in Run.rows if "sft/loss" in values] == [1, 2, 3]
        assert ("3/3" in out.err) is not quiet  # one bar, only when asked for
