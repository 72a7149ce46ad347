"""A room on one link: N simulated users ask, stream the answer to its end, read for 5-15 s and ask again, through
gradio_client, against `nbkit chat` or the arena's blind tab, on today's path (`--engine off`: one `generate` per
answer, two at a time) and on the serving engine (nbkit.serve.engine), side by side in one run. Not a test.

    nice -n 10 .venv/bin/python benchmarks/app_load.py --users 1,5,10,20,30 --seconds 120 --app chat
    .venv/bin/python benchmarks/app_load.py --model tiny --users 6 --seconds 20 --app arena --path engine

Each path's server runs in its own subprocess (its own GIL and threads, as `nbkit chat` would), with the default
caps except the votes per client address (every simulated user is 127.0.0.1; raise it with --votes-per-address).
User counts run in turn, each on both paths before the next, so both see the same machine.

Reported per (users, path): answers, time to first token p50/p95 (arena: until both answers have started),
tokens/s per user (an answer's tokens over its streaming time) and in aggregate (all tokens over the wall time),
errors, votes stored against cast (arena), the load average, and the machine: CPU model, serving dtype, and the
FLOP/s a large matmul in that dtype reaches here, measured in the same run, against which 2 x params x tok/s is the
share of the machine's limit the serving reached.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import threading
import time
from pathlib import Path


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def started(messages) -> bool:
    """A Chatbot value whose last assistant message has text (the arena shows "..." until then)."""
    last = (messages or [{}])[-1]
    content = last.get("content") if isinstance(last, dict) else None
    text = content if isinstance(content, str) else str(content or "")
    return last.get("role") == "assistant" and bool(text.strip()) and text != "..."


def ask_chat(client, i: int, model: str, max_new: int) -> tuple[float | None, int]:
    """One chat turn streamed to its end: (time to first token, tokens in the answer)."""
    t0, first, n = time.perf_counter(), None, 0
    prompt = f"user {i}: tell me something about the sea"
    job = client.submit(prompt, model, "", 0.7, 0.95, 0, 1.0, max_new, api_name="/chat")
    for partial in job:
        msgs = partial if isinstance(partial, list) else [partial]
        if first is None and any(m.get("content") and not m.get("metadata") for m in msgs):
            first = time.perf_counter() - t0
    for m in job.result() if isinstance(job.result(), list) else [job.result()]:
        title = (m.get("metadata") or {}).get("title", "")
        if title.startswith("⚠"):
            raise RuntimeError(title)
        if " tokens" in title:
            n = int(re.search(r"(\d+) tokens", title).group(1))
    return first, n


def ask_arena(client, i: int, max_new: int, tok) -> tuple[float | None, int]:
    """One blind turn (both answers) streamed to its end: (time until both answers started, their tokens)."""
    t0, first = time.perf_counter(), None
    job = client.submit(f"user {i}: which is better?", "", 0.7, 0.95, max_new, api_name="/blind")
    for partial in job:
        if first is None and started(partial[0]) and started(partial[1]):
            first = time.perf_counter() - t0
    a, b = job.result()[:2]
    texts = [m[-1]["content"] if m else "" for m in (a, b)]
    return first, sum(len(tok(str(t), add_special_tokens=False)["input_ids"]) for t in texts)


def vote(client, rng) -> bool:
    """Cast a vote; True when the server refused it with a message."""
    job = client.submit(api_name=f"/vote_{rng.choice(['left', 'right', 'tie', 'both_bad'])}")
    job.result()
    q, refused = job.communicator.updates, False
    while not q.empty():
        refused |= bool(getattr(q.get_nowait(), "log", None))
    return refused


def user(i: int, args, url: str, until: float, out: dict, lock: threading.Lock, tok) -> None:
    from gradio_client import Client

    rng = random.Random(i)
    time.sleep(rng.uniform(0, min(5.0, args.seconds / 4)))  # a room does not press Enter in the same ms
    client = None
    while client is None and time.monotonic() < until:
        try:
            client = Client(url, verbose=False, httpx_kwargs={"timeout": 120})
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                out["errors"].append(f"connect: {type(e).__name__}: {str(e)[:120]}")
            time.sleep(1.0)
    while client is not None and time.monotonic() < until:
        try:
            t0 = time.perf_counter()
            if args.app == "chat":
                first, n = ask_chat(client, i, args.label, args.max_new)
            else:
                first, n = ask_arena(client, i, args.max_new, tok)
            seconds = time.perf_counter() - t0
            with lock:
                out["answers"] += 1
                out["tokens"] += n
                if first is not None:
                    out["ttft"].append(first)
                    if n > 1 and seconds > first:
                        out["rate"].append(n / (seconds - first))
            if args.app == "arena":
                refused = vote(client, rng)
                with lock:
                    out["cast"] += 1
                    out["refused"] += refused
        except Exception as e:  # noqa: BLE001 - counted and reported
            with lock:
                out["errors"].append(f"{type(e).__name__}: {str(e)[:120]}")
        time.sleep(rng.uniform(*args.read))


# --------------------------------------------------------------------------------------------------- servers


def serve(args) -> None:
    """The server side of one path, in its own process: one app on one Backend; prints its URL and what it
    serves, then serves until killed."""
    from nbkit.runs import Registry
    from nbkit.serve.launch import Backend, ServeConfig, auto_threads, build_app, launch

    root = Path(args.serve)
    reg = Registry(root / "runs")
    cfg = ServeConfig.for_profile("smoke" if args.model == "tiny" else "cpu")
    cfg.models = [args.model]
    if args.app == "arena":
        with reg.create(f"{args.model}-b", "base", {"model": args.model}, tracking="off"):
            pass  # the blind pool's second model: the same weights under another label, loaded twice
        cfg.models.append(f"{args.model}-b")
    cfg.arena_db, cfg.engine = str(root / "votes.sqlite"), args.engine
    cfg.max_new_tokens = max(cfg.max_new_tokens, args.max_new)
    cfg.limits.votes_per_address = args.votes_per_address
    app = "compare" if args.app == "arena" else "chat"
    cfg.threads = auto_threads(app, cfg.concurrency)  # as `nbkit chat|compare` (the engine adapts its own)
    backend = Backend(cfg, reg)
    model = None
    for label in cfg.models:
        model, _ = backend.model(label)
    params = sum(p.numel() for p in model.parameters())
    demo = launch(build_app(app, backend), cfg, say=lambda s: None)
    print(f"INFO {str(model.dtype).removeprefix('torch.')} {params}", flush=True)
    print(f"URL {demo.local_url}", flush=True)
    while True:
        time.sleep(3600)


def start_server(args, engine: str):
    """(process, url, dtype, params, vote file) of one path's server."""
    import subprocess
    import sys

    root = Path(tempfile.mkdtemp(prefix=f"nbkit-load-{engine}-"))
    cmd = [sys.executable, __file__, "--serve", str(root), "--engine", engine, "--model", args.model]
    cmd += [
        "--app",
        args.app,
        "--max-new",
        str(args.max_new),
        "--votes-per-address",
        str(args.votes_per_address),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    info = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {engine} server did not start")
        if line.startswith("INFO "):
            info = line.split()[1:]
        if line.startswith("URL "):
            return proc, line.split()[1], info[0], int(info[1]), root / "votes.sqlite"


# --------------------------------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def matmul_flops(dtype: str, n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of an (n x n) @ (n x n) matmul in `dtype` on all cores: the machine's limit for a forward pass."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    a = torch.randn(n, n, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, dtype=getattr(torch, dtype))
    a @ b  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        done += 1
    return 2 * n**3 * done / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------------- main


def phase(args, users: int, url: str, tok, votes_file) -> dict:
    from nbkit.serve.arena import VoteStore

    out = {"answers": 0, "tokens": 0, "ttft": [], "rate": [], "errors": [], "cast": 0, "refused": 0}
    lock = threading.Lock()
    stored0 = VoteStore(votes_file).count() if args.app == "arena" else 0
    load0 = os.getloadavg()[0]
    start = time.monotonic()
    until = start + args.seconds
    threads = [
        threading.Thread(target=user, args=(i, args, url, until, out, lock, tok), daemon=True)
        for i in range(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 900)
    out["wall"] = time.monotonic() - start
    out["load"] = (load0, os.getloadavg()[0])
    out["stored"] = VoteStore(votes_file).count() - stored0 if args.app == "arena" else 0
    return out


def report(users: int, path: str, o: dict, params: int, flops: float, app: str) -> str:
    agg = o["tokens"] / o["wall"]
    per_user = sum(o["rate"]) / len(o["rate"]) if o["rate"] else float("nan")
    line = (
        f"{users:5d} {path:6s} {o['answers']:7d} {percentile(o['ttft'], 50):7.2f} {percentile(o['ttft'], 95):7.2f} "
        f"{per_user:9.1f} {agg:8.1f} {100 * 2 * params * agg / flops:6.1f}% {len(o['errors']):6d} "
        f"{o['load'][0]:5.2f}->{o['load'][1]:5.2f}"
    )
    if app == "arena":
        accepted = o["cast"] - o["refused"]
        line += f"  votes cast {o['cast']}, refused {o['refused']}, stored {o['stored']}"
        line += " (nothing lost)" if o["stored"] == accepted else " (MISMATCH)"
    if o["errors"]:
        line += f"\n      first error: {o['errors'][0]}"
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="the embedded model (default) or tiny")
    p.add_argument("--app", choices=["chat", "arena"], default="chat")
    p.add_argument("--path", choices=["old", "engine", "both"], default="both")
    p.add_argument("--users", default="30", help="comma-separated user counts, e.g. 1,5,10,20,30")
    p.add_argument("--seconds", type=float, default=120, help="load per (users, path)")
    p.add_argument("--max-new", type=int, default=64, help="new tokens per answer")
    p.add_argument("--read", type=float, nargs=2, default=(5.0, 15.0), help="seconds a user reads an answer")
    p.add_argument("--votes-per-address", type=int, default=10_000)
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # internal: run one path's server here
    p.add_argument("--engine", default="on", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return serve(args)

    from transformers import AutoTokenizer

    from nbkit import models

    args.label = args.model
    paths = {"old": "off", "engine": "on"}
    chosen = ["old", "engine"] if args.path == "both" else [args.path]
    servers = {path: start_server(args, paths[path]) for path in chosen}
    dtype, params = next(iter(servers.values()))[2:4]
    tok = AutoTokenizer.from_pretrained(models.resolve(args.model))
    flops = matmul_flops(dtype)
    print(
        f"{args.app}, {args.model} ({params / 1e6:.1f}M params, {dtype}), {args.max_new} new tokens, "
        f"users read {args.read[0]:g}-{args.read[1]:g} s, {args.seconds:g} s per run\n"
        f"machine: {cpu_model()}, {len(os.sched_getaffinity(0))} cores; a {dtype} matmul reaches "
        f"{flops / 1e9:.0f} GFLOP/s = {flops / (2 * params):.0f} tok/s for this model at most"
    )
    print(
        "users path   answers   ttft50  ttft95  tok/s/user  tok/s    limit errors  load avg"
        + ("  (ttft: until both answers started)" if args.app == "arena" else "")
    )
    try:
        for users in [int(u) for u in args.users.split(",")]:
            for path in chosen:
                proc, url, _, _, votes_file = servers[path]
                result = phase(args, users, url, tok, votes_file)
                print(report(users, path, result, params, flops, args.app), flush=True)
    finally:
        for proc, *_ in servers.values():
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
