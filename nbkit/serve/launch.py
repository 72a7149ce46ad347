"""Serve checkpoints in Gradio apps: `nbkit chat [MODEL]` (one model) and `nbkit compare [MODEL ...]` (the arena).

This module launches the apps with a safe share/auth policy and holds the Gradio glue they share (errors as
toasts). What they call is `nbkit.serve.backend.Backend` (catalog, cache, caps, streaming, votes); `apps/chat.py` and
`apps/compare.py` (in the repository, next to `nbkit/`) hold only layout and event wiring.

- Caps: every input has one (nbkit.serve.limits); request bodies are capped before anything reads them, uploads
  are off, failed logins are limited per client address, the queue is bounded.
- Client address: the socket's peer. X-Forwarded-For is ignored (uvicorn would otherwise believe it from
  localhost, so anyone could pick their address) unless `--trusted-proxy` names the proxy in front.
- Sharing: `--share` without `--auth` generates a password and prints it; a public link is never open to anyone.
  Offline, Gradio's share server is unreachable: we say so in one line (with the real error) and keep serving on
  the local URL, instead of Gradio's misleading "Missing file ... frpc".
- The apps are registered by name (APPS: name -> module of the repository's `apps/` package, found there or through
  $NBKIT_APPS) and imported as modules; each gives `build(backend)`. They import `nbkit.serve.ui`, not this module, so
  there is no import cycle. An install without the repository gets a one-line error saying so.

    nbkit chat smollm2-135m --port 7860
    nbkit compare tiny star-it1 star-it2 --share            # prints a generated password
    from nbkit.serve.launch import launch_inline; launch_inline("compare", ["base", "sft"])   # in a notebook

Simplified relative to FastChat/LlamaBoard: one process; answers are batched across users by one engine
(nbkit.serve.engine; `--engine off` keeps one `generate` per answer), no multi-GPU workers, no moderation.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from nbkit.errors import ConfigError, ServeError
from nbkit.serve.backend import Backend, ServeConfig, auto_threads, check_prompt, clean_text, label_message
from nbkit.serve.catalog import Catalog, ModelCache
from nbkit.serve.ui import ui_errors, ui_warn

# app name -> the module (in the repository's apps/ package) whose `build(backend)` returns its Blocks
APPS = {"chat": "apps.chat", "compare": "apps.compare"}
__all__ = [
    "Backend",
    "Catalog",
    "ModelCache",
    "ServeConfig",
    "ServeError",
    "check_prompt",
    "clean_text",
    "label_message",
    "launch",
    "launch_inline",
    "build_app",
    "ui_errors",
    "ui_warn",
]


# --------------------------------------------------------------------------------------------------- launching


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must look like USER:PASS (both non-empty), e.g. --auth alice:s3cret")
    return user, password


def share_credentials(share: bool, auth: str | None, say=print) -> tuple[str, str] | None:
    """The login to require. --share without --auth gets a generated password, printed once: a public link is
    never open to anyone who finds it."""
    creds = parse_auth(auth)
    if share and creds is None:
        creds = ("nbkit", secrets.token_urlsafe(12))
        say(f"nbkit: --share without --auth: generated login  user: {creds[0]}  password: {creds[1]}")
    return creds


def share_problem(timeout: float = 5.0) -> str | None:
    """None when Gradio's share server answers; otherwise the real reason, e.g. "ConnectError: [Errno -3] ..."."""
    import httpx
    from gradio import networking

    if networking.GRADIO_SHARE_SERVER_ADDRESS:
        return None  # a self-hosted share server: let Gradio try it
    try:
        r = httpx.get(networking.GRADIO_API_SERVER, timeout=timeout)
        r.raise_for_status()
        r.json()[0]["host"]
        return None
    except Exception as e:  # noqa: BLE001 - any failure means no link; report what it was
        return f"{type(e).__name__}: {e}".strip()


def find_app(name: str) -> Path:
    """apps/<name>.py from $NBKIT_APPS, the repository this nbkit was imported from, or ./apps."""
    if name not in APPS:
        raise ConfigError(f"unknown app {name!r}; use one of {', '.join(APPS)}")
    roots = [os.environ.get("NBKIT_APPS"), Path(__file__).resolve().parents[2] / "apps", Path.cwd() / "apps"]
    for root in roots:
        if root and (Path(root) / f"{name}.py").is_file():
            return Path(root) / f"{name}.py"
    raise ConfigError(
        f"apps/{name}.py not found: the apps live in the nbkit repository, not in the installed package. Run from "
        "a clone (pip install -e .), or set NBKIT_APPS to the clone's apps/ folder."
    )


def build_app(name: str, backend: Backend):
    """The Blocks of app `name` (a key of APPS): its module's `build(backend)`. The folder that holds apps/ is put
    on sys.path first, so the apps import like any package wherever nbkit runs from."""
    apps = find_app(name).parent
    if str(apps.parent) not in sys.path:
        sys.path.insert(0, str(apps.parent))
    return importlib.import_module(APPS[name]).build(backend)


def login_page(app_title: str, user: str | None, generated: bool) -> str:
    """HTML shown above Gradio's login form: what this is, and, for a generated login, the user name (the
    password is printed only in the terminal)."""
    import html

    text = f"<h2>{html.escape(app_title)}</h2><p>Log in with the user name and password your instructor gave you.</p>"
    if generated and user:
        text += (
            f"<p>User name: <b>{html.escape(user)}</b> (the password was printed where the app started).</p>"
        )
    return text


def queue_options(cfg: ServeConfig) -> dict:
    """Gradio's queue caps from the config: requests run at once, and requests waiting beyond which more are refused."""
    return {"default_concurrency_limit": cfg.events_at_once(), "max_size": cfg.queue_size}


_FORWARDED = threading.Lock()


@contextlib.contextmanager
def forwarded_from(trusted: str | None):
    """While a server starts: uvicorn believes X-Forwarded-For only from `trusted` (comma-separated addresses
    or networks; None: from nobody). Gradio builds uvicorn's config without a way to pass this, and uvicorn reads
    FORWARDED_ALLOW_IPS (default: localhost) when it does, so it is set around the start."""
    with _FORWARDED:
        old = os.environ.get("FORWARDED_ALLOW_IPS")
        os.environ["FORWARDED_ALLOW_IPS"] = trusted or ""
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("FORWARDED_ALLOW_IPS", None)
            else:
                os.environ["FORWARDED_ALLOW_IPS"] = old


def launch(demo, cfg: ServeConfig, inline: bool = False, say=print):
    """Start `demo` without blocking; returns it (demo.local_url, demo.share_url). Applies the caps (queue, body
    size, uploads off, failed logins per address), the login, the client-address policy and the share policy."""
    from starlette.middleware import Middleware

    from nbkit.serve.limits import LoginGuard, RoomGuard

    generated = cfg.share and not cfg.auth
    creds = share_credentials(cfg.share, cfg.auth, say)
    share = cfg.share
    if share:
        problem = share_problem()
        if problem:
            share = False
            say(
                f"nbkit: no public link: Gradio's share server is unreachable from here ({problem}). "
                "Serving locally only."
            )
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and creds is None:
        say(f"nbkit: warning: listening on {cfg.host} without --auth: anyone on this network can use it.")
    demo.queue(**queue_options(cfg))
    lim = cfg.limits
    guard = Middleware(RoomGuard, max_body=lim.max_body_bytes, login_per_minute=lim.login_per_minute)
    with forwarded_from(cfg.trusted_proxy):
        demo.launch(
            server_name=cfg.host,
            server_port=cfg.port,
            auth=LoginGuard(*creds) if creds else None,
            auth_message=login_page(demo.title or "nbkit", creds[0] if creds else None, generated)
            if creds
            else None,
            share=share,
            inline=inline,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
            max_threads=max(8, cfg.events_at_once() * 4),
            max_file_size=lim.max_file_size,  # 0: uploads off, no app has a file input
            # RoomGuard sits inside Gradio's own middleware, before any route reads a body
            app_kwargs={"middleware": [guard]},
        )
    if share and not demo.share_url:
        say(
            "nbkit: no public link: the share tunnel failed after the share server answered. Serving locally only."
        )
    say(f"nbkit: serving at {demo.local_url}" + (f" and {demo.share_url}" if demo.share_url else ""))
    return demo


def launch_inline(
    app: str = "chat", models: Sequence[str] | None = None, profile: str | None = None, keep=None, **overrides
):
    """Show an app inside a notebook (the STaR and budget notebooks end with one).

    In the smoke profile or on CI (or keep=False) it starts, checks that it answers, and closes at once, so
    executing the notebook never blocks. Returns the Blocks; `demo.close()` stops it.
    """
    import httpx

    from nbkit.profiles import get_profile

    prof = get_profile(profile)
    cfg = ServeConfig.for_profile(prof.name)
    if models:
        cfg.models = list(models)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.threads = cfg.threads or auto_threads(app, cfg.concurrency)
    keep = (prof.name != "smoke" and not os.environ.get("CI")) if keep is None else keep
    demo = launch(build_app(app, Backend(cfg)), cfg, inline=keep)
    if not keep:
        code = httpx.get(f"{demo.local_url}config", timeout=10).status_code
        demo.close()
        print(
            f"nbkit: the {app} app answered (HTTP {code}) and was closed: {prof.name} profile / CI keeps no server."
        )
    return demo


CLI_HELP = {
    "chat": "Chat with one model in the browser (regenerate, undo, edit, JSON download).",
    "compare": "The arena: blind A/B votes, side by side, token view, leaderboard and batch accuracy.",
}


def cli(argv: list[str]) -> int:
    """`nbkit chat [MODEL]` / `nbkit compare [MODEL ...]` (argv[0] is the app name). Blocks until Ctrl-C."""
    app = argv[0]
    p = argparse.ArgumentParser(
        prog=f"nbkit {app}",
        description=CLI_HELP[app],
        epilog="examples:\n  nbkit chat smollm2-135m\n  nbkit compare tiny star-it1 --share\n"
        "  nbkit compare base sft --host 0.0.0.0 --auth class:s3cret\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="*", help="short names, run names, hub ids or checkpoint/adapter folders")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on; 0.0.0.0 = your network")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument(
        "--share", action="store_true", help="public link (a login is generated if --auth is not given)"
    )
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="login required to open the app")
    p.add_argument("--profile", default=None, help="smoke | cpu | gpu (default $NBKIT_PROFILE or cpu)")
    p.add_argument("--registry", default=None, help="run registry folder (default ./runs or $NBKIT_RUNS)")
    p.add_argument("--db", default=None, help="arena vote file (default <registry>/arena.sqlite)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap on new tokens per answer")
    p.add_argument("--cache-gb", type=float, default=None, help="memory for loaded models (default 4)")
    p.add_argument(
        "--engine",
        choices=["on", "off"],
        default="on",
        help="on: one engine batches all users' answers; off: one generate per answer, 2 at a time (the old path)",
    )
    p.add_argument(
        "--join-codes",
        default=None,
        metavar="N|FILE",
        help="arena: a personal code per attendee (N of them, or one per name in FILE), kept in "
        "<registry>/arena-codes.tsv; votes need one and are capped per attendee",
    )
    p.add_argument(
        "--trusted-proxy",
        default=None,
        metavar="ADDR",
        help="a reverse proxy in front (address or network) whose X-Forwarded-For is believed; default none",
    )
    args = p.parse_args(argv[1:])

    from nbkit.profiles import get_profile

    cfg = ServeConfig.for_profile(get_profile(args.profile).name)
    cfg.models = args.models or cfg.models
    cfg.host, cfg.port, cfg.share, cfg.auth = args.host, args.port, args.share, args.auth
    cfg.registry, cfg.arena_db = args.registry, args.db
    cfg.join_codes, cfg.trusted_proxy = args.join_codes, args.trusted_proxy
    if args.max_new_tokens:
        cfg.max_new_tokens = args.max_new_tokens
        cfg.default_new_tokens = min(cfg.default_new_tokens, args.max_new_tokens)
    if args.cache_gb:
        cfg.cache_gb = args.cache_gb
    cfg.engine = args.engine
    cfg.threads = auto_threads(app, cfg.concurrency)
    parse_auth(cfg.auth)  # a bad --auth fails before anything loads
    backend = Backend(cfg)
    if backend.attendees.required:
        codes = backend.registry.root / "arena-codes.tsv"
        print(
            f"nbkit: {len(backend.attendees.names)} join codes (name, code) in {codes}: hand one to each attendee"
        )
    for name in cfg.models:  # a folder that holds no model fails here, in one line
        _check_launch(name)
    print(f"nbkit: loading {backend.default_models[0]} ...", file=sys.stderr)
    backend.model(backend.default_models[0])  # fail early, and the first user does not wait for loading
    serve_until_interrupted(launch(build_app(app, backend), cfg))
    return 0


def serve_until_interrupted(demo) -> None:
    """Keep a launched app serving until Ctrl-C, then close it."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        demo.close()


def _check_launch(name: str) -> None:
    """One-line refusal of a launch name that cannot be a model: a folder without a checkpoint in it."""
    path = Path(name).expanduser()
    if path.is_dir() and not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        raise ServeError(
            f"{name} is a folder without a model in it (no config.json or adapter_config.json). Give a short "
            "name (nbkit models list), a run name (nbkit runs list) or a checkpoint folder."
        )
