"""Where a run ran: the CPU model, threads, torch, and the GPU when there is one; the one-line caption that figures,
notebooks and model cards print."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU's model name, e.g. "AMD EPYC" (platform.processor() is empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """Where a run ran: enough to tell a laptop CPU run from an H100 one."""
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def hardware_label(hw: dict | None = None) -> str:
    """The one-line hardware caption of figures, notebooks and model cards, from `hardware()` (default: this
    machine) or a run's recorded `run.hardware`. Example: "CPU AMD EPYC, 2 threads" or "GPU NVIDIA H100 80GB HBM3".
    """
    hw = hardware() if hw is None else hw
    if "gpu" in hw:
        return f"GPU {hw['gpu']}"
    return f"CPU {hw.get('cpu', '?')}, {hw.get('threads', '?')} threads"
