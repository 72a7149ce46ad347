"""nbkit.dist on one process, and the experiments under `torchrun --nproc_per_node 2` (gloo, CPU)."""

from hypothesis import given
from hypothesis import strategies as st

from nbkit import dist


def test_bounds_by_hand():
    assert [dist.bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert [dist.bounds(2, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]  # a rank may get nothing


@given(st.integers(0, 50), st.integers(1, 8))
def test_blocks_cover_every_item_once_in_order(n, world):
    blocks = [dist.bounds(n, r, world) for r in range(world)]
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # contiguous: concatenation restores order
    sizes = [stop - start for start, stop in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_one_process_is_rank_0_of_1_and_touches_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (dist.rank(), dist.world(), dist.is_main()) == (0, 1, True)
    assert dist.shard([1, 2, 3]) == [1, 2, 3] and dist.gather([1, 2]) == [1, 2] and dist.broadcast("x") == "x"
    dist.barrier()
    null = dist.NullRun()
    null.log({"a": 1})
    null.set_summary(a=1)
    assert null.path.is_dir()
