"""Several processes, one small API: who am I, my share of the work, everyone's results, wait for everyone.

    from nbkit import dist
    rows = dist.gather(evaluate(dist.shard(test)))   # each rank evaluates its block; every rank gets all rows
    if dist.is_main(): write(rows)                   # only rank 0 writes the registry and wandb
    dist.barrier()

One process (a notebook, `nbkit rft ...`): rank 0 of 1, `shard` returns everything and `gather`/`barrier` do
nothing, and accelerate is never touched. Under `torchrun --nproc_per_node N` or `accelerate launch` (WORLD_SIZE > 1)
it is accelerate's `PartialState`, with `cpu=True` where there is no CUDA: without it, torchrun on CPU reports one
process on every rank, so every rank believes it is rank 0.

`shard` is contiguous, not strided: rank r gets one block, so `gather(shard(items))` gives `items` back in order
(per-problem scores of two runs still pair item by item).
"""

from __future__ import annotations

import os
from functools import cache


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@cache
def state():
    """accelerate's PartialState for this job (it also initializes the process group: gloo on CPU, nccl on GPU)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def rank() -> int:
    return state().process_index if _launched() else 0


def world() -> int:
    return state().num_processes if _launched() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one process that writes the registry and wandb."""
    return rank() == 0


def bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous block of n items; block sizes differ by at most one, earlier ranks first.

    Example: bounds(5, 0, 2) -> (0, 3); bounds(5, 1, 2) -> (3, 5).
    """
    size, extra = divmod(n, world)
    start = rank * size + min(rank, extra)
    return start, start + size + (rank < extra)


def shard(items: list) -> list:
    """This rank's contiguous block of `items` (all of them on one process). Example, 2 ranks: [a, b, c] -> rank 0
    [a, b], rank 1 [c]."""
    start, stop = bounds(len(items), rank(), world())
    return list(items[start:stop])


def gather(items: list) -> list:
    """Every rank's list concatenated in rank order, on every rank (accelerate's `gather_object`); a no-op on one
    process. `gather(shard(xs)) == xs`."""
    if not _launched():
        return list(items)
    from accelerate.utils import gather_object

    state()
    return gather_object(list(items))


def on_shards(fn, items: list) -> tuple[list, list[int]]:
    """fn on this rank's shard of `items` (fn: list -> list of results, one per item), then everyone's results in
    item order and the number of items each rank did, e.g. evaluation rows and [3, 3] on 2 ranks ([6] on one)."""
    part = shard(items)
    return gather(fn(part)), gather([len(part)])


def broadcast(obj):
    """Rank 0's `obj` on every rank, e.g. a decision only rank 0 may take (does this run exist yet?)."""
    if not _launched():
        return obj
    from accelerate.utils import broadcast_object_list

    state()
    return broadcast_object_list([obj])[0]


def barrier() -> None:
    """Wait until every rank gets here (accelerate's `wait_for_everyone`); a no-op on one process."""
    if _launched():
        state().wait_for_everyone()
