"""A real browser on both apps, headless Debian Chromium driven by Python playwright (never `playwright install`:
it downloads a browser).

- chat: log in, get a labelled answer, regenerate it, send an empty message (the conversation stays visible, no
  "Error" badge), download the conversation as JSON;
- arena: a two-turn blind battle, vote buttons off until both answers are done, vote, the leaderboard changes.

    apt-get install -y chromium        # Debian's package; /usr/bin/chromium
    pytest -m browser tests/test_browser.py

Saves test-artifacts/chat.png, chat-error.png and arena.png. Skipped where Chromium is missing, except on CI
(CI=true), where that fails.
"""

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from nbkit.runs import Registry
from nbkit.serve.launch import Backend, ServeConfig, build_app, launch

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("NBKIT_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
AUTH = ("ws", "letmein")
LONG = 90_000  # ms; the test machine is shared with training runs


def serve(app, tmp_path_factory):
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    reg = Registry(tmp_path_factory.mktemp("browser-runs"))
    with reg.create("tiny-base", "base", {"model": "tiny"}, tracking="off"):
        pass
    cfg = ServeConfig.for_profile("smoke")
    cfg.models, cfg.auth = ["tiny", "tiny-base"], "{}:{}".format(*AUTH)
    cfg.max_new_tokens = cfg.default_new_tokens = 24
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cfg.port = s.getsockname()[1]
    cfg.arena_db = str(tmp_path_factory.mktemp("arena") / "votes.sqlite")
    backend = Backend(cfg, reg)
    backend.arena.cfg.n_boot = 10
    for label in cfg.models:
        backend.model(label)  # as the CLI does: loaded before the first visitor
    return launch(build_app(app, backend), cfg), backend


@pytest.fixture
def page():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=LONG)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
        pg.set_default_timeout(LONG)
        try:
            yield pg
        finally:
            browser.close()


def log_in(page, url):
    from playwright.sync_api import expect

    page.goto(url, wait_until="domcontentloaded", timeout=LONG)
    expect(
        page.get_by_text("Log in with the user name and password")
    ).to_be_visible()  # the login page says what
    page.get_by_label("username").fill(AUTH[0])
    page.get_by_label("password").fill(AUTH[1])
    page.get_by_role("button", name="Login").click()


def test_chat_regenerate_and_an_error_that_keeps_the_conversation(page, tmp_path_factory):
    from playwright.sync_api import expect

    demo, _ = serve("chat", tmp_path_factory)
    try:
        log_in(page, demo.local_url)
        box, bot = page.locator("#message textarea"), page.locator("#chatbot")
        expect(box).to_be_editable()
        box.fill("Tell me a story")
        box.press("Enter")
        expect(bot).to_contain_text("tok/s")  # the label under the answer: model, speed, first token
        expect(bot).to_contain_text("tiny · ")
        bubbles = bot.locator(".message.bot")
        first = bubbles.first.inner_text()

        bot.get_by_label("Retry").click()  # regenerate: Gradio's own retry event
        deadline = time.monotonic() + LONG / 1000

        def regenerated():
            now = bubbles.first.inner_text()
            return now != first and "tok/s" in now  # a new answer, complete with its label

        while not regenerated() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert regenerated(), "regenerate did not produce a new, complete answer"
        expect(bot.get_by_text("Tell me a story")).to_have_count(1)  # the user turn is not duplicated
        page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

        box.fill("   ")  # an empty send: a warning and a note, the conversation stays
        box.press("Enter")
        expect(bot).to_contain_text("Not answered")
        expect(bot.get_by_text("Tell me a story")).to_be_visible()
        expect(page.get_by_text("The prompt is empty").first).to_be_visible()
        expect(page.locator("#chatbot .error, #message .error")).to_have_count(0)
        assert "Error" not in bot.inner_text()
        page.screenshot(path=str(ARTIFACTS / "chat-error.png"), full_page=True)

        box.fill("Are you still there?")  # and the chat goes on
        box.press("Enter")
        expect(bot.get_by_text("Are you still there?")).to_be_visible()
        expect(bot.locator(".message.bot").last).not_to_be_empty()

        page.locator("#export").click()
        link = page.locator("#exported a").first
        with page.expect_download() as dl:
            link.click()
        data = json.loads(Path(dl.value.path()).read_text())
        assert [m["content"] for m in data["messages"] if m["role"] == "user"][0] == "Tell me a story"
    finally:
        demo.close()


def wait_done(page):
    """Both answers finished: the vote buttons wake up."""
    from playwright.sync_api import expect

    expect(page.locator("#vote-left")).to_be_enabled()


def test_vote_after_a_multi_turn_battle(page, tmp_path_factory):
    from playwright.sync_api import expect

    demo, backend = serve("compare", tmp_path_factory)
    try:
        log_in(page, demo.local_url)
        prompt = page.locator("#blind-prompt textarea")
        board = page.locator("#board")
        expect(prompt).to_be_visible()
        expect(board).not_to_contain_text("tiny-base")  # no votes yet
        expect(page.locator("#vote-left")).to_be_disabled()  # nothing to vote on

        prompt.fill("What is 2 + 2?")
        page.locator("#ask").click()
        expect(page.locator("#vote-left")).to_be_disabled()  # still streaming
        wait_done(page)
        prompt.fill("And 3 + 3?")
        page.locator("#ask").click()
        expect(page.locator("#chat-a")).to_contain_text("And 3 + 3?")
        wait_done(page)
        expect(page.locator("#chat-a .message.bot")).to_have_count(2)
        expect(page.locator("#chat-b .message.bot")).to_have_count(2)

        page.locator("#vote-left").click()
        expect(page.locator("#reveal")).to_contain_text("A was")
        expect(board).to_contain_text("tiny-base")
        expect(page.locator("#vote-left")).to_be_disabled()  # one vote per round
        page.screenshot(path=str(ARTIFACTS / "arena.png"), full_page=True)
        (row,) = backend.votes.log()
        assert json.loads(row["prompt"]) == ["What is 2 + 2?", "And 3 + 3?"]

        page.locator("#new-round").click()
        expect(page.locator("#chat-a .message")).to_have_count(0)
    finally:
        demo.close()
    assert (ARTIFACTS / "arena.png").stat().st_size > 10_000


def test_the_room_with_8_laptops(page, tmp_path):
    """The instructor's room after 8 laptops submitted over HTTP (the reference cpu summary moved by a seed effect
    per laptop, tests/test_room.py): pooled claims, the forest of dots, the curves, minutes by CPU, exports.
    Saves test-artifacts/room.png and room-02.png."""
    from playwright.sync_api import expect
    from test_room import envelope, post

    from nbkit.serve.room import RoomConfig
    from nbkit.serve.room import serve as serve_room

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = RoomConfig(
        folder=str(tmp_path / "room"), port=port, auth="{}:{}".format(*AUTH), key="k3y", refresh_s=0
    )
    demo, _ = serve_room(cfg, say=lambda line: None)
    try:
        for i in range(8):
            assert post(demo.local_url.rstrip("/"), envelope(i)).status_code == 200
        log_in(page, demo.local_url)
        claims = page.locator("#claims")
        expect(page.locator("#status")).to_contain_text("8 laptops")
        expect(claims).to_contain_text("AGREES")
        expect(claims).to_contain_text("iteration 3 minus the seed model")
        expect(page.locator("#forest img, #forest svg").first).to_be_visible()
        expect(page.locator("#curves img, #curves svg").first).to_be_visible()
        expect(page.locator("#laptops")).to_contain_text("sim-7")
        page.screenshot(path=str(ARTIFACTS / "room.png"), full_page=True)

        page.locator("#group input").click()
        page.get_by_role("option", name="02 · cpu · 02aaaa").click()
        expect(claims).to_contain_text("warm-start")
        page.screenshot(path=str(ARTIFACTS / "room-02.png"), full_page=True)

        page.locator("#export").click()
        expect(page.locator("#exports")).to_contain_text("pooled")  # Gradio shows "pooled .csv"
    finally:
        demo.close()
    assert (ARTIFACTS / "room.png").stat().st_size > 50_000
    assert (tmp_path / "room" / "exports" / "pooled.csv").exists()


def test_the_instructor_adds_a_model_and_the_room_votes_on_it(page, tmp_path_factory, tiny):
    """Issue 25's hot-add in the browser: a run registered while the arena serves joins the blind pool from the
    Instructor tab (a wrong password adds nothing), new blind rounds draw it, and a vote puts it on the
    leaderboard. Saves test-artifacts/arena-hot-add.png."""
    import random

    from playwright.sync_api import expect

    demo, backend = serve("compare", tmp_path_factory)
    backend.cfg.instructor = "teach"  # as NBKIT_INSTRUCTOR would; read at each hot-add
    backend.arena.rng = random.Random(0)  # the server's draws, fixed: the loop below never depends on luck
    try:
        log_in(page, demo.local_url)
        pool, board = page.locator("#pool"), page.locator("#board")
        expect(pool).to_contain_text("2 models")
        with backend.registry.create("voted-dpo", "dpo", {"model": "tiny"}, tracking="off") as run:
            run.save_model(*tiny)  # finished after the start: the dropdown does not list it, the catalog does

        page.get_by_role("tab", name="Instructor").click()
        name = page.locator("#new-model input")
        name.fill("voted-dpo")
        name.press("Enter")
        page.locator("#instructor-pw input").fill("guess")
        page.locator("#add-model").click()
        expect(page.get_by_text("Wrong instructor password: nothing was added.").first).to_be_visible()
        assert backend.arena.pool == ["tiny", "tiny-base"]

        page.locator("#instructor-pw input").fill("teach")
        page.locator("#add-model").click()
        expect(page.locator("#added")).to_contain_text("Added voted-dpo")
        assert backend.arena.pool == ["tiny", "tiny-base", "voted-dpo"]

        page.get_by_role("tab", name="Blind A/B").click()
        expect(pool).to_contain_text("3 models")
        expect(pool).to_contain_text("voted-dpo")
        prompt, reveal = page.locator("#blind-prompt textarea"), page.locator("#reveal")
        for i in range(5):  # each round draws 2 of 3: the new model sits in 2 of 3
            prompt.fill(f"What is {i} + 2?")
            page.locator("#ask").click()
            wait_done(page)
            page.locator("#vote-left").click()
            expect(reveal).to_contain_text("A was")
            if "voted-dpo" in reveal.inner_text():
                break
            page.locator("#new-round").click()
            expect(reveal).to_be_empty()
        expect(reveal).to_contain_text("voted-dpo")
        expect(board).to_contain_text("voted-dpo")  # the leaderboard under the battle
        page.screenshot(path=str(ARTIFACTS / "arena-hot-add.png"), full_page=True)
    finally:
        demo.close()
    assert (ARTIFACTS / "arena-hot-add.png").stat().st_size > 10_000
