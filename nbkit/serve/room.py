"""`nbkit room`: the instructor's page that pools the room's results, and the endpoint the laptops submit to.

    nbkit room --host 0.0.0.0 --auth teacher:s3cret --key tulip-42     # serve; prints the attendees' command
    nbkit room submit reports/cpu/summary.json --to http://10.0.0.5:7860 --key tulip-42   # on a laptop
    nbkit room submit reports/cpu/summary.json --to /media/usb/room                      # offline: a file
    nbkit room pool reports-seed-*/summary.json --out pooled/      # no page: the pooled table, CSV and figures

Two secrets: the page is for the password holder only (`--auth`, else a generated login, printed once, with the
login throttle of the other apps), and laptops submit with the room's key (`--key`, else generated), which lets
them send and nothing else. POST /room/submit takes one JSON submission (nbkit.room.schema) with
`Authorization: Bearer KEY`, and answers 200 with what it stored, or 401 (no or wrong key), 413 (too large), 400
(malformed, out of range), 409 (replayed), 429 (too frequent), each with {"error": one line}; a refused submission
stores nothing. The page also reads the room's inbox folder (the offline path) whenever it refreshes.

The logic lives in nbkit.room (schema, store, pool, plots); this module is layout and wiring.
"""

# no `from __future__ import annotations` here: FastAPI reads the endpoint's `request: Request` annotation at runtime
import argparse
import hmac
import secrets
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from nbkit.config import opt
from nbkit.errors import ConfigError
from nbkit.room import plots, pool
from nbkit.room.client import KEY_ENV, SUBMIT_PATH, submit
from nbkit.room.schema import MAX_BYTES, RoomError, parse
from nbkit.room.store import Room, laptop_key
from nbkit.serve.backend import ServeConfig
from nbkit.serve.launch import launch, parse_auth, serve_until_interrupted
from nbkit.serve.limits import LimitError, RateLimiter
from nbkit.serve.ui import ui_errors


@dataclass
class RoomConfig:
    folder: str = opt("room", "where submissions are kept (one file per laptop and notebook)")
    inbox: str | None = opt(None, "offline submissions folder (default FOLDER/inbox)")
    host: str = opt("127.0.0.1", "interface to listen on (0.0.0.0 = the LAN)")
    port: int | None = opt(None, "port; None = first free from 7860")
    share: bool = opt(False, "ask Gradio for a public link")
    auth: str | None = opt(None, "USER:PASS for the page (default: generated and printed)")
    key: str | None = opt(None, "the key laptops submit with (default: generated and printed)")
    max_bytes: int = opt(MAX_BYTES, "largest submission, in bytes")
    per_laptop: int = opt(6, "submissions per laptop per minute")
    per_address: int = opt(120, "requests per client address per minute (a classroom may share one)")
    refresh_s: float = opt(30.0, "the page re-reads the room this often, in seconds (0: never)")


# --------------------------------------------------------------------------------------------- the endpoint


def add_submit_route(app, room: Room, key: str, cfg: RoomConfig) -> None:
    """POST /room/submit on the page's server (outside the page's login: the room's key guards it)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    per_address = RateLimiter(cfg.per_address, "requests from this address")
    per_laptop = RateLimiter(cfg.per_laptop, "submissions from this laptop")

    async def receive(request: Request):
        try:
            per_address.hit(request.client.host if request.client else "?")
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), key.encode()):
                raise RoomError(
                    "not authenticated: send the room's key (--key, or $NBKIT_ROOM_KEY)", status=401
                )
            data = parse(await read_capped(request, room.max_bytes), room.max_bytes)
            per_laptop.hit(laptop_key(data["laptop"]["id"]))
            out = room.store(data)
        except RoomError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except LimitError as e:
            return JSONResponse({"error": str(e)}, status_code=429)
        replaced = f" (replacing {', '.join(out['replaced'])})" if out["replaced"] else ""
        out["message"] = f"the room has notebook {', '.join(out['notebooks'])} from {out['name']}{replaced}"
        return JSONResponse(out)

    app.add_api_route(SUBMIT_PATH, receive, methods=["POST"])


async def read_capped(request, max_bytes: int) -> bytes:
    """The request's body, refused (413) as soon as it passes `max_bytes`, whatever Content-Length claims."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RoomError(f"submission too large: {int(declared):,} bytes; at most {max_bytes:,}", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise RoomError(f"submission too large: over {max_bytes:,} bytes", status=413)
    return bytes(body)


# ------------------------------------------------------------------------------------------------- the page


def view(room: Room, label: str | None):
    """What the page shows for experiment `label`: (status markdown, pooled claims, forest, curves, minutes,
    laptops)."""
    found = pool.groups(room.entries())
    entries = found.get(label, [])
    n_laptops = len({e["laptop"]["key"] for group in found.values() for e in group})
    status = (
        f"**{len(entries)} laptops** in {label or 'no experiment yet'}; the room holds {n_laptops} laptops."
    )
    others = [f"{k} ({len(v)})" for k, v in found.items() if k != label and k[:2] == (label or "")[:2]]
    if others:
        status += f" Other settings of this notebook, not pooled with it: {', '.join(others)}."
    return (
        status,
        claims_table(pool.pool_claims(entries)),
        plots.forest(entries, label or ""),
        plots.overlay(entries, label or ""),
        plots.minutes(entries, label or ""),
        pool.laptops(entries),
    )


def claims_table(pooled):
    """The pooled claims as the page shows them: claims shortened, intervals as text, three decimals."""

    def fmt(x, sign="+"):
        return "" if x != x else f"{x:{sign}.3f}"

    return pooled.assign(
        claim=[textwrap.shorten(c, 90, placeholder=" …") for c in pooled["claim"]],  # the CSV keeps it whole
        pooled=[
            f"{fmt(r.effect)} [{fmt(r.lo)}, {fmt(r.hi)}]" if r.lo == r.lo else fmt(r.effect)
            for r in pooled.itertuples()
        ],
        tau=pooled["tau"].map(lambda x: fmt(x, "")),
        within=pooled["within"].map(lambda x: fmt(x, "")),
        i2=pooled["i2"].map(lambda x: "" if x != x else f"{100 * x:.0f}%"),
        verdict=pooled["verdict"].fillna("-"),
    )[["claim", "laptops", *pool.COUNTED, "pooled", "tau", "within", "i2", "verdict"]].rename(
        columns={
            "pooled": "pooled [between-laptop 95% CI]",
            "tau": "between-seed SD",
            "within": "within-run half width",
            "i2": "I2",
            "verdict": "pooled verdict",
        }
    )


def build(room: Room, cfg: RoomConfig):
    import gradio as gr

    inbox = Path(cfg.inbox) if cfg.inbox else room.inbox

    def refresh(label):
        stored, refused = room.read_inbox(inbox)
        choices = list(pool.groups(room.entries()))
        label = label if label in choices else (choices[0] if choices else None)
        note = f"Inbox {inbox}: {len(stored)} new" + (f", refused: {'; '.join(refused)}" if refused else "")
        return gr.update(choices=choices, value=label), note, *view(room, label)

    def export():
        return [str(p) for p in plots.export(room.entries(), room.exports)]

    with gr.Blocks(title="nbkit room") as demo:
        gr.Markdown(
            "## The room\nEach laptop ran the same experiment with its own seed. Dots: one laptop's estimate and "
            "its interval within the run. Diamond: the pooled estimate and its interval between laptops "
            "(random-effects, Hartung-Knapp). Between-seed SD larger than the within-run half width: the seed "
            "matters more than the run's own noise says."
        )
        with gr.Row():
            group = gr.Dropdown(
                label="Experiment (notebook · profile · replicate key)", scale=4, elem_id="group"
            )
            again = gr.Button("Refresh", scale=1, elem_id="refresh")
            save = gr.Button("Export CSV + PNG", scale=1, elem_id="export")
        status = gr.Markdown(elem_id="status")
        claims = gr.Dataframe(label="Claims, pooled over laptops", elem_id="claims", wrap=True)
        forest = gr.Plot(label="Each laptop's claims and the pooled estimate", elem_id="forest")
        curves = gr.Plot(label="Curves of every laptop, and their median", elem_id="curves")
        minutes = gr.Plot(label="Minutes per stage, by CPU", elem_id="minutes")
        laptops = gr.Dataframe(label="Laptops", elem_id="laptops")
        note = gr.Markdown(elem_id="inbox")
        files = gr.File(label="Exports", file_count="multiple", elem_id="exports")

        outputs = [group, note, status, claims, forest, curves, minutes, laptops]
        shown = [status, claims, forest, curves, minutes, laptops]
        demo.load(ui_errors(refresh), group, outputs)
        again.click(ui_errors(refresh), group, outputs)
        group.input(ui_errors(lambda label: view(room, label)), group, shown)
        save.click(ui_errors(export), None, files)
        if cfg.refresh_s:
            gr.Timer(cfg.refresh_s).tick(ui_errors(refresh), group, outputs)
    return demo


def serve(cfg: RoomConfig, say=print):
    """Start the room without blocking: the page (behind its login) and the submit endpoint (behind the key).
    Returns (demo, key)."""
    auth = parse_auth(cfg.auth)
    if auth is None:  # the page is never open: a generated login, printed once
        auth = ("teacher", secrets.token_urlsafe(12))
        say(f"nbkit: the room's page: user {auth[0]}  password {auth[1]}")
    key = cfg.key or secrets.token_urlsafe(6)
    room = Room(cfg.folder, cfg.max_bytes)
    serve_cfg = ServeConfig(host=cfg.host, port=cfg.port, share=cfg.share, auth="{}:{}".format(*auth))
    demo = launch(build(room, cfg), serve_cfg, say=say)
    add_submit_route(demo.app, room, key, cfg)
    url = demo.share_url or demo.local_url
    say(
        f"nbkit: room folder {Path(cfg.folder).resolve()}; laptops send with\n"
        f"  nbkit room submit reports/cpu/summary.json --to {url.rstrip('/')} --key {key}\n"
        f"  or, in a notebook: {KEY_ENV}={key} NBKIT_ROOM={url.rstrip('/')}"
    )
    return demo, key


def pool_files(paths: list[str], out: str | None = None, say=print) -> int:
    """`nbkit room pool`: store every file (a folder: its *.json) in a room of its own, print the pooled view, and
    export it into `out` if given. 0, or 1 when no file could be pooled; each refused file gets one line."""
    import tempfile

    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    with tempfile.TemporaryDirectory() as tmp:
        room = Room(tmp)
        for f in files:
            try:  # a summary.json is named after its folder: reports-seed-3/summary.json is "reports-seed-3"
                room.store_file(f, f.resolve().parent.name if f.name == "summary.json" else None)
            except (RoomError, OSError) as e:
                say(f"{f}: not pooled: {e}")
        entries = room.entries()
        if not entries:
            say(f"nothing to pool: none of {len(files)} file(s) is a summary or a submission")
            return 1
        say(pool.text_report(entries).rstrip())
        if out:
            written = plots.export(entries, out)
            say(f"written {len(written)} files into {out}: {', '.join(p.name for p in written)}")
    return 0


def cli(argv: list[str]) -> int:
    """`nbkit room [options]` serves; `nbkit room submit FILE [--to URL|FOLDER]` sends; `nbkit room pool FILE...`
    pools files in the terminal (argv[0] is "room")."""
    if argv[1:2] == ["submit"]:
        p = argparse.ArgumentParser(
            prog="nbkit room submit", description="Send a summary to the instructor's room."
        )
        p.add_argument("file", help="a summary.json (nbkit report writes reports/<profile>/summary.json)")
        p.add_argument("--to", help="the room's address (http://...) or a folder (default $NBKIT_ROOM)")
        p.add_argument("--key", help=f"the room's key (default ${KEY_ENV})")
        p.add_argument(
            "--name", help="your name as the room shows it (default $NBKIT_NAME, else the computer's)"
        )
        args = p.parse_args(argv[2:])
        return 0 if submit(args.file, args.to, args.key, args.name) is not None else 1
    if argv[1:2] == ["pool"]:
        p = argparse.ArgumentParser(
            prog="nbkit room pool",
            description="Pool summaries from files, without a page: the room's table in the terminal (and its CSV "
            "and figures with --out). For one person's own replicates: "
            "`NBKIT_SEED=k nbkit report --profile cpu --out reports-seed-k 02` for a few k, then "
            "`nbkit room pool reports-seed-*/summary.json`.",
        )
        p.add_argument("files", nargs="+", help="summary.json files, submission files, or folders of them")
        p.add_argument("--out", help="also write pooled.csv, laptops.csv and the figures into this folder")
        args = p.parse_args(argv[2:])
        return pool_files(args.files, args.out)
    from transformers import HfArgumentParser

    p = HfArgumentParser(
        RoomConfig,
        prog="nbkit room",
        description="The instructor's room: receives the laptops' summaries and pools them per notebook. "
        "`nbkit room submit FILE --to URL` sends one.",
    )
    cfg, unknown = p.parse_args_into_dataclasses(argv[1:], return_remaining_strings=True)
    if unknown:
        raise ConfigError(
            f"nbkit room: unknown option(s) {' '.join(unknown)}; `nbkit room --help` lists them"
        )
    serve_until_interrupted(serve(cfg)[0])
    return 0


if __name__ == "__main__":
    sys.exit(cli(["room", *sys.argv[1:]]))
