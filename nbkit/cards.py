"""A model card (README.md) for each registry checkpoint: the Hub's metadata (base model, library, tags), then
lineage, config and metrics, so that `huggingface_hub` can push the folder as it is and a reader knows where it
came from. Written by `RunWriter.commit`."""

from __future__ import annotations

import json
from pathlib import Path

from nbkit.hardware import hardware_label


def write_model_card(lineage: list[str], record: dict, ckpt: Path, metrics_file: Path) -> Path:
    """Write ckpt/README.md for the run `record` (run.json's content). `lineage`: run names from the root
    ancestor down to the parent, e.g. ["base", "sft"]."""
    from huggingface_hub import ModelCard, ModelCardData

    adapter = bool(record.get("adapter"))
    base = record.get("base_model", {}).get("peft") or ""
    hub_base = base if base.count("/") == 1 and not base.startswith((".", "/", "~")) else None
    data = ModelCardData(
        library_name="peft" if adapter else "transformers",
        base_model=hub_base,
        pipeline_tag="text-generation",
        tags=["nbkit", record["kind"]] + (["lora"] if adapter else []),
    )
    chain = list(lineage)
    lineage = " -> ".join([*chain, record["name"]])
    summary = {k: v for k, v in record.get("summary", {}).items() if isinstance(v, (int, float, str, bool))}
    last: dict = {}
    if metrics_file.exists():
        for line in metrics_file.read_text(errors="replace").splitlines():
            try:
                last.update(json.loads(line))
            except ValueError:
                continue
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items()) or "| - | - |"
    what = f"a LoRA adapter on `{base}`" if adapter else "a full checkpoint"
    body = f"""
# {record["name"]}

A `{record["kind"]}` run from nbkit (learning LLM post-training on a laptop): {what}.

- Lineage (nbkit run registry): {lineage}
- Base model, as nbkit names it: `{record.get("base_model", {}).get("name", record.get("config", {}).get("model", "-"))}`
- Trained on: {hardware_label(record.get("hardware", {}))}, torch {record.get("hardware", {}).get("torch", "?")}

Load it with plain transformers{" + peft" if adapter else ""}:

```python
{"from peft import AutoPeftModelForCausalLM as Auto" if adapter else "from transformers import AutoModelForCausalLM as Auto"}
model = Auto.from_pretrained("path/to/this/folder")
```

## Summary

| metric | value |
|---|---|
{rows}

## Last logged values

```json
{json.dumps(last, indent=1, default=str)}
```

## Config

```json
{json.dumps(record.get("config", {}), indent=1, default=str)}
```
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    card.save(ckpt / "README.md")
    return ckpt / "README.md"
