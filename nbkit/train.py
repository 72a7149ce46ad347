"""Thin glue between TRL's trainers and the run registry.

- `trainer_config(cls, ...)`: a TRL config (SFTConfig, DPOConfig, GRPOConfig) with settings that work on a laptop
  CPU and on a GPU alike: fp32 on CPU (TRL refuses bf16 there), bf16 on GPU, no activation checkpointing (it only
  costs time on small models), no checkpoints written by the trainer (the registry saves the result), logging every
  step.
- `RegistryCallback`: sends every TRL log line to a run in the registry (and so to wandb).
- `sft(...)`: supervised fine-tuning of a model on prompt-completion records, the step STaR, the RFT warm-start and
  the budget sweep share.
- `dpo(...)`: DPO on preference pairs (prompt, chosen, rejected), the budget sweep's preference step.
- `lora_config(...)`: a peft LoRA config on the attention projections.
"""

from __future__ import annotations

import math
import tempfile
import warnings

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

# TRL 0.x/1.x reads transformers' renamed `is_gradient_checkpointing` while generating in GRPO: nothing a user can do
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def on_gpu() -> bool:
    return torch.cuda.is_available()


_scratch: tempfile.TemporaryDirectory | None = None


def scratch_dir() -> str:
    """One output_dir for every trainer in this process (they save nothing there), removed when it exits."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="nbkit-trainer-")
    return _scratch.name


def trainer_config(cls, output_dir: str | None = None, **overrides):
    """A TRL config object of class `cls` with laptop-safe defaults; `overrides` win."""
    gpu = on_gpu()
    defaults = dict(
        output_dir=output_dir or scratch_dir(),
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        activation_checkpointing=False,
        report_to="none",  # the registry callback forwards metrics to wandb
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=False,
        dataloader_num_workers=0,
        seed=0,
    )
    defaults.update(overrides)
    return cls(**defaults)


class RegistryCallback(TrainerCallback):
    """Forwards the trainer's logs to a RunWriter, optionally under a prefix (e.g. "sft/")."""

    def __init__(self, run, prefix: str = "", step_offset: int = 0):
        self.run, self.prefix, self.step_offset = run, prefix, step_offset

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            scalars = {f"{self.prefix}{k}": v for k, v in logs.items() if isinstance(v, (int, float))}
            self.run.log(scalars, step=state.global_step + self.step_offset)


class QuietProgress(ProgressCallback):
    """transformers' training progress bar without the log dict it writes under the bar at every logging step (a
    hundred lines for STaR's primer); the metrics still reach the registry and wandb through RegistryCallback."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def with_defaults(trainer):
    """What every trainer nbkit builds gets: one progress bar and no printed log dicts (`QuietProgress`; none with
    disable_tqdm), a thread count that follows the machine's load (`nbkit.threads`) and, inside a notebook, the
    cell's live view (`nbkit.live`). Returns the trainer."""
    from nbkit.live import attach
    from nbkit.threads import adapt_callback

    trainer.pop_callback(PrinterCallback)  # what transformers prints instead of a bar under disable_tqdm
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress())
    trainer.add_callback(adapt_callback())
    attach(trainer)
    return trainer


def lora_config(r: int = 8, alpha: int = 16, dropout: float = 0.0):
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )


def sft(
    model,
    tokenizer,
    records: list[dict],
    steps: int | None = None,
    epochs: float = 1.0,
    lr: float = 5e-5,
    batch_size: int = 8,
    max_length: int = 512,
    run=None,
    prefix: str = "sft/",
    lora=None,
    seed: int = 0,
    callbacks: list | None = None,
    **config_overrides,
):
    """Fine-tune `model` in place on prompt-completion `records` with TRL's SFTTrainer; returns the trainer.

    records: rows like Task.sft_record() makes ({"prompt": [...messages], "completion": [...]}); the loss covers
    the completion only. `steps` fixes the number of optimizer steps (else `epochs`). `run` is a RunWriter that
    receives the logs. `lora` is a peft config, or None for a full fine-tune.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not records:
        raise ValueError("sft: no training records (0 examples); nothing to fine-tune on")
    if steps is None:
        steps = max(1, math.ceil(len(records) * epochs / batch_size))
    cfg = trainer_config(
        SFTConfig,
        max_steps=steps,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        **({"lr_scheduler_type": "constant_with_warmup", "warmup_steps": 0} | config_overrides),
    )
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=([RegistryCallback(run, prefix)] if run is not None else []) + (callbacks or []),
    )
    with_defaults(trainer)
    trainer.train()
    release(trainer.model).eval()
    return trainer


def dpo(
    model,
    tokenizer,
    pairs: list[dict],
    epochs: float = 1.0,
    lr: float = 5e-6,
    beta: float = 0.1,
    batch_size: int = 8,
    max_length: int = 256,
    run=None,
    prefix: str = "dpo/",
    lora=None,
    seed: int = 0,
    **config_overrides,
):
    """DPO on conversational `pairs` with TRL's DPOTrainer; returns the trainer (trainer.model is trained).

    pairs: rows with "prompt", "chosen" and "rejected" (chat messages; other keys are ignored). The reference is a
    frozen copy of `model` for a full fine-tune; with `lora` (a peft config) it is the same network with the adapter
    switched off, which saves the copy. Steps: ceil(len(pairs) * epochs / batch_size). `run` is a RunWriter that
    receives the logs.
    """
    import copy

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise ValueError("dpo: no preference pairs (0 pairs); nothing to train on")
    cfg = trainer_config(
        DPOConfig,
        max_steps=max(1, math.ceil(len(pairs) * epochs / batch_size)),
        learning_rate=lr,
        beta=beta,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        lr_scheduler_type="constant_with_warmup",
        seed=seed,
        **config_overrides,
    )
    # TRL would otherwise rebuild the reference from model.name_or_path, which fails offline for short names
    ref = None if lora is not None else copy.deepcopy(model).eval()
    columns = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=cfg,
        train_dataset=Dataset.from_list(columns),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[RegistryCallback(run, prefix)] if run is not None else [],
    )
    with_defaults(trainer)
    trainer.train()
    release(trainer.model).eval()
    return trainer


def release(model):
    """Undo what accelerate's `prepare` leaves on a trained model: an instance-level `forward` bound to it.

    Without this, `copy.deepcopy(model)` returns a copy whose forward still runs the *original's* weights, so a
    copy fine-tuned afterwards scores exactly like its parent. This hid every STaR iteration's training (each
    restarts from a deep copy of the in-memory primer) until it was measured. Returns the model.
    """
    model.__dict__.pop("forward", None)
    model.__dict__.pop("_is_accelerate_prepared", None)
    return model
