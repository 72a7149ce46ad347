"""What a room sees in a real browser (issue #23's failures 4 and 6, issue #25's join code): headless Chromium,
as tests/test_browser.py drives it (helpers imported from there).

- chat: an untouched "Seed (empty = random)" box sends no seed (a Number box sent 0: every answer seeded);
- arena: a visitor who opens the page after votes were cast sees them on the leaderboard, and a join code typed
  once is remembered by the browser and recorded with the vote.
"""

import pytest
import test_browser
from test_browser import LONG, log_in, serve

page = test_browser.page  # the fixture: a fresh headless Chromium page
pytestmark = pytest.mark.browser


def test_an_untouched_seed_box_sends_no_seed(page, tmp_path_factory):
    import inspect

    from playwright.sync_api import expect

    demo, backend = serve("chat", tmp_path_factory)
    chat, seeds = backend.chat, []

    def recording(*a, **kw):  # what the page sent, as the app hands it to the backend
        seeds.append(inspect.signature(chat).bind(*a, **kw).arguments.get("seed"))
        yield from chat(*a, **kw)

    backend.chat = recording
    try:
        log_in(page, demo.local_url)
        box = page.locator("#message textarea")
        box.fill("Hello there")
        box.press("Enter")
        expect(page.locator("#chatbot")).to_contain_text("tok/s")
        assert seeds and seeds[0] in ("", None), seeds  # empty: the server draws a random seed
    finally:
        demo.close()


def test_a_late_visitor_sees_the_votes_and_the_join_code_is_remembered(page, tmp_path_factory):
    from playwright.sync_api import expect

    demo, backend = serve("compare", tmp_path_factory)
    try:
        for _ in range(5):  # votes cast after the page was built, before this visitor came
            backend.votes.add("tiny", "tiny-base", "left")
        log_in(page, demo.local_url)
        expect(page.locator("#board")).to_contain_text("tiny-base")
        code = page.locator("#join-code textarea, #join-code input").first
        code.fill("Ada")
        code.press("Enter")
        expect(page.locator("#joined")).to_contain_text("Voting as Ada")
        page.reload()  # the browser remembers the code
        log_in(page, demo.local_url) if page.get_by_label("password").count() else None
        expect(code).to_have_value("Ada", timeout=LONG)
        page.locator("#blind-prompt textarea").fill("What is 2 + 2?")
        page.locator("#ask").click()
        expect(page.locator("#vote-left")).to_be_enabled()
        page.locator("#vote-left").click()
        expect(page.locator("#reveal")).to_contain_text("A was")
        expect(page.locator("#board")).to_contain_text("6")  # the new vote joins the five: 6 games each
        assert backend.votes.log()[-1]["attendee"] == "Ada"
    finally:
        demo.close()
