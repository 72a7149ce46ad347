import copy

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
