"""A classroom on loopback: N simulated users chat and vote against the `tiny` model for a while, through
gradio_client, as a workshop would through one shared link. Not a test; it prints what a classroom would feel.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/app_load.py --users 30 --seconds 60

Both apps run in a server subprocess on one Backend (chat and compare, as `nbkit chat` and `nbkit compare` would in two),
with the default caps, except the votes per client address: every simulated user comes from 127.0.0.1, which
the per-address cap would otherwise treat as one classroom behind one router (raise it with --votes-per-address).

Each user loops: one chat turn (time to first token measured from submit to the first non-empty partial answer),
one blind turn, one vote on it, then thinks for 0.5-2 s. Reported: requests served, p50/p95 time to first token,
errors, and votes stored against votes cast (nothing may be lost).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def user(i: int, urls: dict, until: float, out: dict, lock: threading.Lock, max_new: int) -> None:
    from gradio_client import Client

    rng = random.Random(i)
    chat = arena = None
    while chat is None and time.monotonic() < until:  # a page load: retried, each failure counted
        try:
            chat, arena = Client(urls["chat"], verbose=False), Client(urls["compare"], verbose=False)
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                out["errors"].append(f"connect: {type(e).__name__}: {str(e)[:120]}")
            chat = None
            time.sleep(1.0)
    while chat is not None and time.monotonic() < until:
        try:
            t0 = time.perf_counter()
            job = chat.submit(
                f"user {i}: tell me something",
                "tiny",
                "",
                0.7,
                0.95,
                0,
                1.0,
                max_new,
                "",
                None,
                api_name="/chat",
            )
            first = None
            for partial in job:
                msgs = partial if isinstance(partial, list) else [partial]
                if first is None and any(m.get("content") and not m.get("metadata") for m in msgs):
                    first = time.perf_counter() - t0
            job.result()
            with lock:
                out["served"] += 1
                if first is not None:
                    out["ttft"].append(first)
            if time.monotonic() >= until:
                break
            t0 = time.perf_counter()
            arena.predict(f"user {i}: which is better?", "", 0.7, 0.95, max_new, api_name="/blind")
            with lock:
                out["served"] += 1
                out["blind_s"].append(time.perf_counter() - t0)
            vote = arena.submit(api_name=f"/vote_{rng.choice(['left', 'right', 'tie', 'both_bad'])}")
            vote.result()
            refused = []
            q = vote.communicator.updates
            while not q.empty():
                u = q.get_nowait()
                if getattr(u, "log", None):
                    refused.append(u.log[0])
            with lock:
                out["served"] += 1
                out["cast"] += 1
                out["refused"] += bool(refused)
                out["refusals"].extend(refused)
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                out["errors"].append(f"{type(e).__name__}: {str(e)[:120]}")
        time.sleep(rng.uniform(0.5, 2.0))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to tell CPU cost from waiting for a core."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(args) -> None:
    """The server side, in its own process (its own GIL, as `nbkit chat` / `nbkit compare` would be): both apps
    on one Backend; prints their URLs, then serves until killed."""
    from nbkit.runs import Registry
    from nbkit.serve.launch import Backend, ServeConfig, auto_threads, build_app, launch

    root = Path(args.serve)
    reg = Registry(root / "runs")
    with reg.create("tiny-b", "base", {"model": "tiny"}, tracking="off"):
        pass  # a second label for the blind pool (same weights)
    cfg = ServeConfig.for_profile("smoke")
    cfg.models, cfg.arena_db = ["tiny", "tiny-b"], str(root / "votes.sqlite")
    cfg.threads = auto_threads("compare", cfg.concurrency)
    cfg.limits.votes_per_address = args.votes_per_address
    backend = Backend(cfg, reg)
    for label in cfg.models:
        backend.model(label)
    for app in ("chat", "compare"):
        demo = launch(build_app(app, backend), cfg, say=lambda s: None)
        print(f"URL {app} {demo.local_url}", flush=True)
    while True:
        time.sleep(3600)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=30)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--max-new", type=int, default=16, help="new tokens per answer")
    p.add_argument("--votes-per-address", type=int, default=10_000)
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # internal: run the server side here
    args = p.parse_args()
    if args.serve:
        return serve(args)

    import subprocess
    import sys

    from nbkit.serve.arena import VoteStore

    root = Path(tempfile.mkdtemp(prefix="nbkit-load-"))
    cmd = [sys.executable, __file__, "--serve", str(root), "--votes-per-address", str(args.votes_per_address)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    urls = {}
    while len(urls) < 2:
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the server side did not start")
        if line.startswith("URL "):
            _, app, url = line.split()
            urls[app] = url

    out = {"served": 0, "ttft": [], "blind_s": [], "errors": [], "cast": 0, "refused": 0, "refusals": []}
    lock = threading.Lock()
    cpu0 = cpu_seconds(server.pid)
    start = time.monotonic()
    until = start + args.seconds
    threads = [
        threading.Thread(target=user, args=(i, urls, until, out, lock, args.max_new), daemon=True)
        for i in range(args.users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 600)
    wall = time.monotonic() - start
    stored = VoteStore(root / "votes.sqlite").count()
    server_cpu = cpu_seconds(server.pid) - cpu0
    server.kill()
    server.wait()

    concurrency, queue = 2, 64  # ServeConfig's defaults, used by the server side
    ttft = out["ttft"]
    accepted = out["cast"] - out["refused"]
    print(
        f"{args.users} users, {args.seconds:.0f} s of load ({wall:.0f} s until the last request ended), "
        f"tiny model, {args.max_new} new tokens, concurrency {concurrency}, queue {queue}"
    )
    print(
        f"requests served: {out['served']} ({out['served'] / wall:.1f}/s): "
        f"{len(ttft)} chat turns, {len(out['blind_s'])} blind turns, {out['cast']} votes"
    )
    print(
        f"chat time to first token: p50 {percentile(ttft, 50):.2f} s, p95 {percentile(ttft, 95):.2f} s, "
        f"max {max(ttft, default=float('nan')):.2f} s"
    )
    if out["blind_s"]:
        print(
            f"blind turn (both answers complete): p50 {statistics.median(out['blind_s']):.2f} s, "
            f"p95 {percentile(out['blind_s'], 95):.2f} s"
        )
    print(f"errors: {len(out['errors'])}" + (f" (first: {out['errors'][0]})" if out["errors"] else ""))
    print(
        f"votes cast {out['cast']}, refused with a message {out['refused']}, accepted {accepted}, "
        f"stored {stored}: {'nothing lost' if stored == accepted else 'MISMATCH'}"
    )
    print(
        f"server CPU: {server_cpu:.1f} s over {wall:.0f} s ({server_cpu / wall:.2f} cores busy on average), "
        f"{server_cpu / max(out['served'], 1):.2f} CPU s per request; on 2 free cores that is about "
        f"{2 * max(out['served'], 1) / max(server_cpu, 1e-9):.1f} requests/s"
    )
    if out["refusals"]:
        print("refusals:", sorted(set(out["refusals"])))


if __name__ == "__main__":
    main()
