"""A real browser on the arena: log in, ask two hidden models, watch the answers stream, vote, see the leaderboard
change. Headless Debian Chromium driven by Python playwright (never `playwright install`: it downloads a browser).

    apt-get install -y chromium        # Debian's package; /usr/bin/chromium
    pytest -m browser tests/test_browser.py

Saves test-artifacts/arena.png. Skipped where Chromium is missing, except on CI (CI=true), where that fails.
"""

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from nbkit.runs import Registry
from nbkit.serve import Backend, ServeConfig, build_app, launch

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("NBKIT_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
AUTH = ("ws", "letmein")

# Records every distinct value of the two answer boxes, sampled each animation frame, to see streaming happen.
WATCH = """() => {
  window.__seen = [];
  const tick = () => {
    const v = [...document.querySelectorAll('#answer-a textarea, #answer-b textarea')].map(t => t.value).join('|');
    if (window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v);
    requestAnimationFrame(tick);
  };
  tick();
}"""


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    reg = Registry(tmp_path_factory.mktemp("browser-runs"))
    with reg.create("tiny-base", "base", {"model": "tiny"}, tracking="off"):
        pass
    cfg = ServeConfig.for_profile("smoke")
    cfg.models, cfg.auth = ["tiny", "tiny-base"], "{}:{}".format(*AUTH)
    cfg.max_new_tokens = cfg.default_new_tokens = 48
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cfg.port = s.getsockname()[1]
    cfg.arena_db = str(tmp_path_factory.mktemp("arena") / "votes.sqlite")
    backend = Backend(cfg, reg)
    backend.arena.cfg.n_boot = 10
    demo = launch(build_app("compare", backend), cfg)
    yield demo
    demo.close()


def test_vote_in_a_real_browser(arena):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        try:
            page.goto(arena.local_url, wait_until="domcontentloaded", timeout=60_000)
            page.get_by_label("username").fill(AUTH[0])
            page.get_by_label("password").fill(AUTH[1])
            page.get_by_role("button", name="Login").click()

            prompt = page.locator("#blind-prompt textarea")
            expect(prompt).to_be_visible(timeout=60_000)
            board = page.locator("#board")
            expect(board).not_to_contain_text("tiny-base")  # no votes yet

            page.evaluate(WATCH)
            prompt.fill("What is 2 + 2?")
            page.locator("#ask").click()
            a, b = page.locator("#answer-a textarea"), page.locator("#answer-b textarea")
            expect(a).not_to_have_value("", timeout=60_000)
            expect(b).not_to_have_value("", timeout=60_000)
            last, stable_since = None, time.monotonic()
            while time.monotonic() - stable_since < 1.5:  # finished = no change for 1.5 s
                now = (a.input_value(), b.input_value())
                if now != last:
                    last, stable_since = now, time.monotonic()
                time.sleep(0.1)
            seen = [v for v in page.evaluate("window.__seen") if v.strip("|")]
            assert len(seen) >= 2, f"the answers appeared in one piece, not streamed: {seen}"

            page.locator("#vote-left").click()
            reveal = page.locator("#reveal")
            expect(reveal).to_contain_text("A was", timeout=30_000)
            expect(board).to_contain_text("tiny-base", timeout=30_000)
            expect(board).to_contain_text("tiny")
            page.screenshot(path=str(ARTIFACTS / "arena.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "arena.png").stat().st_size > 10_000
