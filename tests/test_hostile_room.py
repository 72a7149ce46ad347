"""What a hostile classroom found in the apps (issue #23, "What a room finds in the apps today", 1-9) and the
forged votes of issue #25, each replayed against a live server with the `tiny` model.

Each test failed on the code before the fix: oversized bodies were parsed before the login check, a vote cost
three bootstraps, a late vote revived the voted round, a new visitor saw the board of the server's start, one
person could lock the shared user name out, and an attacker with the class password got 25 of 25 forged votes
counted (a new session per round, a spoofed X-Forwarded-For).
"""

import json
import select
import socket
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import test_apps
from gradio_client.utils import Status
from test_apps import (
    AUTH,
    answer_of,
    blind_args,
    board_rows,
    chat_args,
    client,
    make_backend,
    warnings_of,
)

from nbkit.serve.arena import ArenaError, VoteStore
from nbkit.serve.launch import build_app, launch
from nbkit.serve.limits import LimitError, Limits

registry = test_apps.registry  # the fixture: a registry with tiny-b (a full checkpoint) and tiny-lora
chat_app = test_apps.chat_app  # the fixture: the chat app on a backend of that registry


@pytest.fixture(scope="module")
def arena(registry, tmp_path_factory):
    """The arena with 200 votes already stored, as after a workshop's first hour."""
    backend = make_backend(registry, tmp_path_factory)
    for i in range(200):
        backend.votes.add(
            *(("tiny", "tiny-b") if i % 3 else ("tiny-b", "tiny")), ("left", "right", "tie")[i % 3]
        )
    demo = launch(build_app("compare", backend), backend.cfg)
    yield demo, backend
    demo.close()


def vmrss_mb(field="VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


def post_huge(url: str, path: str, size: int, chunked: bool, cookie: str = "") -> tuple[int | None, int]:
    """POST a `size`-byte body by hand. Declared by Content-Length: send the headers and 64 kB, then wait for
    the answer (a server that reads the body first never answers). Chunked: send 1 MB chunks until the server
    answers or hangs up. Returns (the status, or None when it hung up without one we could read; bytes sent)."""
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=15)
    head = f"POST /{path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    head += f"Cookie: {cookie}\r\n" if cookie else ""
    sent, block = 0, b"x" * 2**20
    try:
        s.sendall((head + "\r\n").encode())
        if not chunked:
            s.sendall(block[: 2**16])
            sent = 2**16
        while chunked and sent < size and not select.select([s], [], [], 0)[0]:
            s.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            sent += len(block)
        reply = s.recv(4096).decode("latin1")
        return (int(reply.split()[1]) if reply.startswith("HTTP/") else None), sent
    except OSError:  # reset: the server closed the connection on a body it would not read
        return None, sent
    finally:
        s.close()


# ------------------------------------------------------------------------------------------------ 1: bodies


def test_a_200_mb_body_is_refused_before_it_is_read(registry, tmp_path_factory):
    """#23.1: a 200 MB POST to the queue raised RSS by ~490 MB unauthenticated, ~790 MB logged in."""
    backend = make_backend(registry, tmp_path_factory)
    demo = launch(build_app("chat", backend), backend.cfg)
    try:
        url = demo.local_url
        with httpx.Client(base_url=url) as http:
            http.post("login", data=dict(zip(("username", "password"), AUTH)))
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        peak, kept = vmrss_mb("VmHWM"), vmrss_mb()
        for who in ("", cookie):  # a stranger, then a logged-in attendee
            t0 = time.monotonic()
            status, sent = post_huge(url, "gradio_api/queue/join", 200 * 2**20, chunked=False, cookie=who)
            assert status == 413, status  # answered from the header alone, the body never read
            assert time.monotonic() - t0 < 10
            status, sent = post_huge(url, "gradio_api/queue/join", 200 * 2**20, chunked=True, cookie=who)
            assert status in (413, None) and sent < 50 * 2**20, (status, sent)  # stopped at the cap
        assert vmrss_mb("VmHWM") - peak < 60 and vmrss_mb() - kept < 60
        ok = httpx.post(f"{url}login", data={"username": "alice", "password": "s3cret"}, timeout=10)
        assert ok.status_code == 200  # a normal body still goes through, and the server is alive
    finally:
        demo.close()


# ------------------------------------------------------------------------------------------------ 2-4: arena


def test_a_vote_is_answered_fast_with_200_votes_and_the_board_is_computed_once_per_change(arena):
    """#23.2: every vote and every refresh recomputed the bootstrap (8-11 s per vote at 200 votes)."""
    demo, backend = arena
    c = client(demo)
    c.predict(*blind_args("Quick?", 2), api_name="/blind")
    t0 = time.perf_counter()
    reveal = c.predict(api_name="/vote_left")
    took = time.perf_counter() - t0
    assert "A was **" in reveal and took < 1.0, took
    board = c.predict("bt", api_name="/leaderboard")[0]
    assert sum(row[5] for row in board_rows(board)) == 2 * 201  # the vote is on the board at once
    before = backend.boards.computed
    for method in ("bt", "elo") * 5:  # two clients refreshing in a loop cost no bootstrap
        c.predict(method, api_name="/leaderboard")
    assert backend.boards.computed == before


def test_a_late_vote_does_not_revive_the_voted_round(arena):
    """#23.3: vote, then New round and Send before the reveal arrives: the late vote wrote round 1 back into
    the session, and round 2 could no longer be voted."""
    demo, backend = arena
    c = client(demo)
    c.predict(*blind_args("Round one", 2), api_name="/blind")
    first = c.submit(api_name="/vote_left")  # before the fix it took seconds: three bootstraps
    while not first.done() and first.status().code != Status.PROCESSING:
        time.sleep(0.01)  # the vote has read round 1 from the session (or is already answered)
    c.predict(api_name="/new_round")
    c.predict(*blind_args("Round two", 2), api_name="/blind")
    assert "A was" in str(first.result())
    second = c.submit(api_name="/vote_right")
    assert warnings_of(second) == [] and "A was" in str(second.result())
    rows = [r for r in backend.votes.log() if r["prompt"] in ('["Round one"]', '["Round two"]')]
    assert sorted(json.loads(r["prompt"])[0] for r in rows) == ["Round one", "Round two"]


def test_a_new_visitor_sees_the_current_leaderboard(registry, tmp_path_factory):
    """#23.4: the page showed the board of the server's start ("No votes yet." with 50 votes stored)."""
    backend = make_backend(registry, tmp_path_factory)
    backend.arena.cfg.n_boot = 10
    demo = build_app("compare", backend)
    for _ in range(50):
        backend.votes.add("tiny", "tiny-b", "left")  # votes cast after the page was built
    board_id = next(
        c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "full-board"
    )
    on_load = [
        fn
        for fn in demo.fns.values()
        if any(t[1] == "load" for t in fn.targets) and board_id in [o._id for o in fn.outputs]
    ]
    assert len(on_load) == 1, "no page-load event fills the leaderboard"
    small, full, notes, *_ = on_load[0].fn("bt")
    assert full["games"].sum() == 100 and "No votes yet" not in notes


# ------------------------------------------------------------------------------------------------ 5-6: chat


def test_chat_has_a_stop_button(registry, tmp_path_factory):
    """#23.5: the custom textbox lacked stop_btn, so a long answer could not be stopped. While an answer streams,
    ChatInterface turns the message box's send button into its stop button, if the box has one."""
    import asyncio
    import inspect

    demo = build_app("chat", make_backend(registry, tmp_path_factory))
    box = next(c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "message")
    shown = []
    for fn in demo.fns.values():
        if [o._id for o in fn.outputs] == [box] and not fn.inputs and fn.fn is not None:
            update = fn.fn()
            update = asyncio.run(update) if inspect.isawaitable(update) else update
            shown.append(getattr(update, "stop_btn", False))  # a Textbox, or a plain update dict
    assert any(shown), "the message box never shows a stop button"
    stops = [fn for fn in demo.fns.values() if (box, "stop") in [tuple(t) for t in fn.targets]]
    assert any(fn.cancels for fn in stops), "no Stop event cancels the answer"


def test_an_empty_seed_is_random_and_a_bad_one_is_refused(chat_app):
    """#23.6: "Seed (empty = random)" was a Number box that showed and sent 0: every browser answer was seeded."""
    demo, backend = chat_app
    (seed,) = [
        c for c in demo.config["components"] if c.get("props", {}).get("label") == "Seed (empty = random)"
    ]
    assert seed["type"] == "textbox" and seed["props"]["value"] == ""  # what an untouched page sends
    from nbkit.serve.limits import parse_seed

    assert (
        parse_seed("", Limits()) is None
        and parse_seed(" 42 ", Limits()) == 42
        and parse_seed(-1, Limits()) is None
    )
    with pytest.raises(LimitError, match="not a whole number"):
        parse_seed("abc", Limits())
    c = client(demo)
    answers = {
        answer_of(c.predict(*chat_args("Say something", max_new=12, seed=""), api_name="/chat"))
        for _ in range(3)
    }
    assert len(answers) > 1  # random each time: Retry gives a new answer


# ------------------------------------------------------------------------------------------------ 7-9


def test_the_batch_tab_offers_only_tasks_that_work(arena):
    """#23.7: gsm8k and multiple_choice were offered and always failed."""
    demo, _ = arena
    c = client(demo)
    for task in ("gsm8k", "multiple_choice"):
        table = c.predict(["tiny"], task, 5, api_name="/batch")
        assert table["data"][0][0] == "tiny" and table["data"][0][2] == 2  # the bundled sample's 2 held out
    job = c.submit(["tiny"], "arithmetic", 2, api_name="/batch")
    assert job.result()["data"][0][2] == 2


def test_failed_logins_slow_the_guesser_not_the_class(registry, tmp_path_factory):
    """#23.8: ten wrong passwords a minute from anyone locked the shared user name out, right password included."""
    backend = make_backend(registry, tmp_path_factory)
    backend.cfg.limits.login_per_minute = 5
    demo = launch(build_app("chat", backend), backend.cfg)
    right = dict(zip(("username", "password"), AUTH))
    newcomer = httpx.Client(base_url=demo.local_url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    try:
        with httpx.Client(base_url=demo.local_url) as guesser:
            codes = [
                guesser.post("login", data={"username": "alice", "password": f"g{i}"}).status_code
                for i in range(12)
            ]
            assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}
            assert newcomer.post("login", data=right).status_code == 200  # the class still gets in
            spoofed = {"X-Forwarded-For": "10.1.2.3"}  # a new address, as far as the header goes: no
            r = guesser.post("login", data=right, headers=spoofed)
            assert r.status_code == 429 and "Too many failed logins" in r.text
    finally:
        newcomer.close()
        demo.close()


def test_the_elo_view_explains_itself_and_names_the_bradley_terry_verdict(registry, tmp_path_factory):
    """#23.9: 30-0 unanimous votes were "still tied, about 137 more votes" in the Elo view."""
    backend = make_backend(registry, tmp_path_factory)
    backend.arena.cfg.n_boot = 50
    for _ in range(30):
        backend.votes.add("tiny", "tiny-b", "left")
    notes = backend.board_notes("elo")
    assert "Elo view" in notes and "Bradley-Terry: tiny is ahead of tiny-b" in notes
    assert "more votes to separate" not in notes
    assert "tiny is ahead of tiny-b" in backend.board_notes("bt")


def test_the_downloaded_conversation_has_its_settings(chat_app):
    """#23.9: the downloaded JSON's "settings" was always empty."""
    demo, _ = chat_app
    history = [
        {"role": r, "content": [{"type": "text", "text": t}]}
        for r, t in (("user", "hi"), ("assistant", "hello"))
    ]
    args = (history, "tiny", "Be brief.", 1.5, 0.9, 5, 1.2, 20, " ###, END", " 7")  # as the page holds them
    out = client(demo).predict(*args, api_name="/export")
    data = json.loads(Path(out["value"] if isinstance(out, dict) else out).read_text())
    assert data["settings"] == {
        "system": "Be brief.",
        "temperature": 1.5,
        "top_p": 0.9,
        "max_new_tokens": 20,
        "top_k": 5,
        "repetition_penalty": 1.2,
        "seed": 7,
        "stop": ["###", "END"],  # as the server applies them
    }


def test_a_malformed_api_value_gets_one_line_and_no_traceback(chat_app, capfd):
    """#23.9: a word for a slider logged a full traceback per call, and the caller got an empty error."""
    demo, _ = chat_app
    capfd.readouterr()
    with httpx.Client(base_url=demo.local_url) as http:
        http.post("login", data=dict(zip(("username", "password"), AUTH)))
        for data, said in (
            (
                ["hi", [], "tiny", "", "abc", 0.95, 0, 1.0, 4, "", None],
                "Temperature (0 = greedy): 'abc' is not a valid",
            ),
            (["hi"], "This endpoint takes 11 values; 1 were sent."),
        ):
            r = http.post("gradio_api/call/chat", json={"data": data})
            events = http.get(f"gradio_api/call/chat/{r.json()['event_id']}", timeout=60).text
            assert "event: error" in events and said in events, events
    assert "Traceback" not in capfd.readouterr().err


# ------------------------------------------------------------------------------------------------ #25: identity


def test_join_codes_are_made_kept_and_checked(tmp_path):
    from nbkit.serve.attendees import Attendees, normalize

    path = tmp_path / "codes.tsv"
    codes = Attendees.load(path, "12")
    assert sorted(codes.names.values())[:2] == ["attendee-01", "attendee-02"] and len(codes.names) == 12
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = Attendees.load(path, "12")  # a restart: the slips handed out stay valid
    assert again.names == codes.names
    names = tmp_path / "names.txt"
    names.write_text("Ada\nGrace\n\n")
    both = Attendees.load(path, str(names))
    code = next(c for c, n in both.names.items() if n == "Ada")
    assert (
        both.resolve(code.upper()[:4] + " - " + code[4:]) == "Ada" and normalize(" K7MQ-3x9v ") == "k7mq3x9v"
    )
    with pytest.raises(ArenaError, match="join code"):
        both.resolve("")
    for _ in range(10):
        with pytest.raises(ArenaError, match="unknown"):
            both.resolve("nope-nope", "10.0.0.5")
    with pytest.raises(LimitError, match="wrong join codes"):
        both.resolve(code, "10.0.0.5")  # a guesser waits, even with a right code
    assert both.resolve(code, "10.0.0.6") == "Ada"
    assert Attendees().resolve("  Ana\x00 ") == "Ana" and not Attendees().required


def test_the_attendee_cap_holds_across_sessions_and_addresses(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite")
    landed = 0
    for i in range(10):  # a new session and a new address for every round, one attendee
        store.open_round(f"r{i}", "x", "y", f"s{i}", f"10.0.0.{i}", "mallory")
        store.serve_turn(f"r{i}", "q", "a", "b")
        try:
            store.vote_round(f"r{i}", "left", f"s{i}", f"10.0.0.{i}", attendee="mallory", per_attendee=4)
            landed += 1
        except ArenaError as e:
            assert "Too many votes from you: at most 4 a minute" in str(e)
    assert landed == 4
    store.open_round("anon", "x", "y", "s-anon", "10.0.1.1")
    store.serve_turn("anon", "q", "a", "b")
    store.vote_round("anon", "tie", "s-anon", "10.0.1.1", per_attendee=0)  # no identity: no attendee cap
    assert [r["attendee"] for r in store.log()] == ["mallory"] * 4 + [""]


def test_forged_votes_count_at_most_the_attendee_cap(registry, tmp_path_factory):
    """#25's attacker with the class password: a new session per round and a spoofed X-Forwarded-For (which the
    server believed from localhost) got 25 of 25 forged votes counted. Now the cap is per attendee."""
    from gradio_client import Client

    backend = make_backend(registry, tmp_path_factory, join_codes="3")
    backend.arena.cfg.n_boot = 10
    backend.limits.votes_per_attendee = 4  # below the per-session (6) and per-address (60) caps
    backend.limits.vote_window = 3600.0  # the caps count over an hour: a slow machine cannot outwait them
    demo = launch(build_app("compare", backend), backend.cfg)
    code, name = next(iter(backend.attendees.names.items()))
    try:
        refused = Client(demo.local_url, auth=AUTH, verbose=False)
        job = refused.submit(*blind_args("hi", 1), api_name="/blind")
        assert "join code" in warnings_of(job)[0]  # no code, no round
        counted, c = 0, Client(demo.local_url, auth=AUTH, verbose=False)
        for i in range(25):
            c.reset_session()  # a new session per round: the per-session cap starts again
            c.headers["X-Forwarded-For"] = f"203.0.113.{i}"  # and a new address, as far as the header goes
            c.predict(*blind_args(f"forged {i}", 1), code, api_name="/blind")
            job = c.submit(code, api_name="/vote_left")
            said = warnings_of(job)
            counted += not said
            assert not said or "Too many votes from you: at most 4 in 60 minutes" in said[0], said
        lim = backend.limits.votes_per_attendee
        rows = [r for r in backend.votes.log() if r["attendee"] == name]
        assert counted == len(rows) == lim
        assert {r["client"] for r in rows} == {"127.0.0.1"}  # the socket's peer, never the forged header
        with sqlite3.connect(backend.votes.path) as db:
            assert db.execute("SELECT attendee FROM rounds WHERE attendee = ?", (name,)).fetchall()
    finally:
        demo.close()


def test_a_trusted_proxy_is_believed(registry, tmp_path_factory):
    backend = make_backend(registry, tmp_path_factory, trusted_proxy="127.0.0.1")
    demo = launch(build_app("compare", backend), backend.cfg)
    try:
        from gradio_client import Client

        c = Client(demo.local_url, auth=AUTH, verbose=False, headers={"X-Forwarded-For": "198.51.100.7"})
        c.predict(*blind_args("via the proxy", 1), api_name="/blind")
        c.predict(api_name="/vote_tie")
        assert backend.votes.log()[-1]["client"] == "198.51.100.7"
    finally:
        demo.close()
