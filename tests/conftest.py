"""Shared test setup: no wandb, a fresh run registry per session, the model cache shared with the user's."""

import os

import pytest

os.environ.setdefault("NBKIT_WANDB", "off")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _registry_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    old = os.environ.get("NBKIT_RUNS")
    os.environ["NBKIT_RUNS"] = str(root)
    yield root
    if old is None:
        os.environ.pop("NBKIT_RUNS", None)
    else:
        os.environ["NBKIT_RUNS"] = old


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny random model, fp32, loaded once."""
    from nbkit.models import load

    return load("tiny", dtype="float32")


@pytest.fixture
def registry(tmp_path):
    from nbkit.runs import Registry

    return Registry(tmp_path / "runs")
