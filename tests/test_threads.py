"""nbkit's thread policy: passive OpenMP waits, and as many threads as cores other processes leave free."""

import torch

from nbkit import threads


def test_threads_for_leaves_the_busy_cores_alone():
    assert threads.threads_for(2, 0) == 2
    assert threads.threads_for(2, 1) == 1
    assert threads.threads_for(2, 7) == 1  # never 0
    assert threads.threads_for(8, 3) == 5


def test_mode_follows_the_user(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NBKIT_THREADS", raising=False)
    assert threads.mode() == "auto"
    monkeypatch.setenv("NBKIT_THREADS", "3")
    assert threads.mode() == "3"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's OpenMP setting wins over nbkit's
    assert threads.mode() == "off"


def test_configure_sets_a_passive_wait_policy_unless_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NBKIT_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.configure()
    assert threads.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.configure()
    assert threads.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_adapt_sets_torch_threads_and_off_leaves_them(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        monkeypatch.setenv("NBKIT_THREADS", "1")
        assert threads.adapt() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("NBKIT_THREADS", "off")
        assert threads.adapt() == 1  # off: whatever torch has now
        monkeypatch.setenv("NBKIT_THREADS", "auto")
        n = threads.adapt()
        assert 1 <= n <= (threads.os.cpu_count() or 1) and torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)


def test_runnable_elsewhere_is_a_count():
    n = threads.runnable_elsewhere(samples=3, gap=0.001)
    assert isinstance(n, int) and n >= 0
    assert threads.own_runnable() >= 1  # the thread reading it is running
