"""CPU threads that share a busy laptop gracefully.

PyTorch runs each operation on as many OpenMP threads as there are cores, and OpenMP threads that wait at the end
of a parallel region spin for a while before they sleep. Alone, that is fastest. Beside a second PyTorch process
(another notebook, a test run) it is not: the two processes' threads fight over the same cores, a spinning thread
burns the time slice its sibling in the other process needed, and every operation waits for its slowest thread.
An SFT step of the 135M model went from 3.3 s alone to 27-34 s beside one or two such jobs on 2 cores, where a fair
share would be about 2x (`benchmarks/contention.py` measures it).

nbkit's defaults (NBKIT_THREADS=auto):
- `configure()`, run when nbkit is imported: OMP_WAIT_POLICY=PASSIVE, so a waiting thread sleeps at once. OpenMP
  reads it only when it starts, so it takes effect when nbkit is imported before torch (every notebook and the CLI
  do); set by the user, it is left alone.
- `adapt()`, run when a trainer starts (and every 10 s of its steps) and before each sampling call: as many threads
  as cores that other processes' runnable threads leave free right now, at least 1. Alone on 2 cores that is 2;
  beside one busy process, 1.

NBKIT_THREADS=off leaves PyTorch's defaults; NBKIT_THREADS=<n> fixes n threads. OMP_NUM_THREADS, when set, wins.
"""

from __future__ import annotations

import os
import time


def mode() -> str:
    """'auto', 'off', or a thread count as a string."""
    if os.environ.get("OMP_NUM_THREADS"):
        return "off"
    return os.environ.get("NBKIT_THREADS", "auto").strip().lower() or "auto"


def configure() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE for this process unless told otherwise (call before importing torch)."""
    if mode() == "off":
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # too late if torch is imported already (see above)


def runnable_elsewhere(samples: int = 5, gap: float = 0.004) -> int:
    """Threads of other processes runnable right now (median of a few reads): Linux's count of runnable threads
    (/proc/loadavg, "runnable/total") less this process's own runnable threads (/proc/self/task/*/stat).

    Returns 0 where there is no /proc (macOS, Windows): nbkit then keeps PyTorch's own thread count.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                everyone = int(f.read().split()[3].split("/")[0])
            counts.append(everyone - own_runnable())
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(gap)
    return max(0, sorted(counts)[len(counts) // 2])


def own_runnable() -> int:
    """How many of this process's threads are running or runnable now (from /proc/self/task)."""
    n = 0
    for task in os.scandir("/proc/self/task"):
        try:
            with open(f"{task.path}/stat") as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # the thread ended meanwhile
            continue
    return n


def threads_for(cores: int, busy: int) -> int:
    """Example: 2 cores, nothing else running -> 2; one busy thread elsewhere -> 1; 8 cores, 3 busy -> 5."""
    return max(1, min(cores, cores - busy))


def adapt() -> int:
    """Set torch's intra-op threads for what the machine has free now (see the module docstring); returns it."""
    import torch

    choice = mode()
    if choice == "off":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = int(choice) if choice.isdigit() else threads_for(cores, runnable_elsewhere())
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


def adapt_callback(every: float = 10.0):
    """A transformers TrainerCallback that re-runs `adapt()` at a step's start, at most every `every` seconds."""
    from transformers import TrainerCallback

    class AdaptThreads(TrainerCallback):
        last = -float("inf")

        def on_step_begin(self, args, state, control, **kwargs):
            if time.perf_counter() - self.last >= every:
                adapt()
                self.last = time.perf_counter()

    return AdaptThreads()
