"""Registry checkpoints follow the HF conventions: plain transformers + peft open them, offline, without nbkit."""

import json
import os
import subprocess
import sys

import pytest
import torch

from nbkit import models

PLAIN = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import AutoPeftModelForCausalLM
full_dir, adapter_dir = sys.argv[1:3]
x = torch.tensor([[1, 2, 3, 4]])
full = AutoModelForCausalLM.from_pretrained(full_dir)
tok = AutoTokenizer.from_pretrained(full_dir)
adapter = AutoPeftModelForCausalLM.from_pretrained(adapter_dir)
with torch.no_grad():
    out = {"full": full(x).logits[0, -1, :5].tolist(), "adapter": adapter(x).logits[0, -1, :5].tolist(),
           "eos": tok.eos_token, "nbkit_loaded": "nbkit" in sys.modules}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lineage(tmp_path_factory, tiny):
    """base (tiny) -> full (a full checkpoint) -> lora (an adapter on it), in a fresh registry."""
    from peft import get_peft_model

    from nbkit.runs import Registry
    from nbkit.train import lora_config

    reg = Registry(tmp_path_factory.mktemp("hf") / "runs")
    with reg.create("base", kind="base", config={"model": "tiny"}, tracking="off"):
        pass
    with reg.create("full", kind="sft", config={"lr": 1e-4}, parent="base", tracking="off") as run:
        model, tok = models.load("tiny", dtype="float32")
        with torch.no_grad():
            model.model.norm.weight.mul_(1.5)  # differs from tiny, so loading the wrong base would show
        run.save_model(model, tok)
        run.log({"loss": 0.7}, step=3)
        run.set_summary(accuracy=0.5)
    with reg.create("lora", kind="rft", config={"lora": True}, parent="full", tracking="off") as run:
        model, tok = reg.load("full", dtype="float32")
        peft_model = get_peft_model(model, lora_config(r=4))
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.fill_(0.05)
        run.save_model(peft_model, tok)
        run.set_summary(reward=0.25)
    return reg


def test_adapter_names_a_base_plain_peft_resolves(lineage):
    lora = lineage.get("lora")
    peft_cfg = json.loads((lora.checkpoint / "adapter_config.json").read_text())
    full_ckpt = str(lineage.get("full").checkpoint.resolve())
    assert peft_cfg["base_model_name_or_path"] == full_ckpt  # the parent's checkpoint, not nbkit's "tiny"
    assert lora.base_model == {"name": str(lineage.get("full").checkpoint), "peft": full_ckpt, "run": "full"}


def test_plain_transformers_and_peft_open_registry_checkpoints_offline(lineage):
    full, lora = lineage.get("full").checkpoint, lineage.get("lora").checkpoint
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, str(full), str(lora)], capture_output=True, text=True, env=env, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not got["nbkit_loaded"] and got["eos"] == "<|im_end|>"
    x = torch.tensor([[1, 2, 3, 4]])
    ours_full, _ = lineage.load("full", dtype="float32")
    ours_lora, _ = lineage.load("lora", dtype="float32")
    with torch.no_grad():
        assert torch.allclose(torch.tensor(got["full"]), ours_full(x).logits[0, -1, :5], atol=1e-4)
        assert torch.allclose(torch.tensor(got["adapter"]), ours_lora(x).logits[0, -1, :5], atol=1e-4)
        assert not torch.allclose(torch.tensor(got["adapter"]), torch.tensor(got["full"]), atol=1e-3)


def test_adapter_on_a_short_name_base_records_the_hub_id_or_the_cached_folder(tiny, registry):
    from peft import get_peft_model

    from nbkit.train import lora_config

    with registry.create("base", kind="base", config={"model": "tiny"}, tracking="off"):
        pass
    with registry.create("lora", kind="sft", parent="base", tracking="off") as run:
        run.save_model(get_peft_model(models.load("tiny", dtype="float32")[0], lora_config(r=2)))
    peft_cfg = json.loads((registry.get("lora").checkpoint / "adapter_config.json").read_text())
    assert peft_cfg["base_model_name_or_path"] == str(models.pull("tiny").resolve())  # tiny has no hub id
    assert registry.get("lora").base_model["name"] == "tiny"  # nbkit's name stays in nbkit's metadata
    assert models.portable_base("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # and back: nbkit loads a hub-id base through its offline short name
    assert models.nbkit_base("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m"
    loaded, _ = registry.load("lora", dtype="float32")
    assert models.describe(loaded)["params"] == models.describe(tiny[0])["params"]


def test_checkpoints_carry_a_model_card(lineage):
    from huggingface_hub import ModelCard

    full = ModelCard.load(lineage.get("full").checkpoint / "README.md")
    assert full.data.library_name == "transformers" and "nbkit" in full.data.tags
    assert "Lineage (nbkit run registry): base -> full" in full.text
    assert "| accuracy | 0.5 |" in full.text and '"loss": 0.7' in full.text and '"lr": 0.0001' in full.text
    lora = ModelCard.load(lineage.get("lora").checkpoint / "README.md")
    assert lora.data.library_name == "peft" and "lora" in lora.data.tags
    assert "base -> full -> lora" in lora.text and "AutoPeftModelForCausalLM" in lora.text
    assert lora.data.base_model is None  # a local path is not a hub id: the Hub would reject it


def test_model_card_names_a_hub_base(tmp_path):
    from huggingface_hub import ModelCard

    from nbkit.cards import write_model_card

    record = {
        "name": "x",
        "kind": "sft",
        "adapter": True,
        "config": {},
        "base_model": {"name": "smollm2-135m", "peft": "HuggingFaceTB/SmolLM2-135M-Instruct"},
    }
    card = ModelCard.load(write_model_card(["base"], record, tmp_path, tmp_path / "none.jsonl"))
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and "base -> x" in card.text
