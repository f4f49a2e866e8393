"""The web page in headless Chromium (Playwright): pick a user, search, add an item with a picture.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` Python package;
skipped cleanly otherwise. Screenshots go to the test's tmp dir.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from serving_bundles import BLUE, block, poster, shared_bundle, user_block

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (/usr/bin/chromium)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from prismrec.serving.app import ServingSettings, create_app
    from prismrec.serving.bundle import load_bundle
    from prismrec.serving.engine import ServingEngine

    root = tmp_path_factory.mktemp("web")
    engine = ServingEngine(load_bundle(shared_bundle("vbpr", tmp_path_factory)), state_dir=root / "state")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(engine, ServingSettings(api_key=None)), host="127.0.0.1", port=port,
                            log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", root
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.goto(server[0] + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        yield page
        browser.close()


def item_ids(page, container: str) -> list[str]:
    return page.eval_on_selector_all(f"#{container} .card", "cards => cards.map(c => c.dataset.itemId)")


def test_pick_a_user_and_see_history_and_recommendations_with_posters(page, tmp_path):
    assert "VBPR" in page.text_content("#status")
    page.fill("#user-input", "u3")
    page.click("#user-go")
    page.wait_for_function("document.querySelectorAll('#recs .card').length === 10")
    recommended, history = item_ids(page, "recs"), item_ids(page, "history")
    assert history and not set(recommended) & set(history)
    assert sum(block(item) == 0 for item in recommended[:3]) == 3  # u3 likes space films
    page.wait_for_function("[...document.querySelectorAll('#recs img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(tmp_path / "user.png"), full_page=True)
    assert (tmp_path / "user.png").stat().st_size > 0


def test_search_items_by_title(page, tmp_path):
    page.fill("#search-input", "wed")
    page.click("#search-go")
    page.wait_for_function("document.querySelectorAll('#search-results .card').length > 0")
    titles = page.eval_on_selector_all("#search-results .card .title", "ts => ts.map(t => t.textContent)")
    assert titles == ["Wedding Bells", "June Wedding"]
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)


def test_add_an_item_with_a_picture_and_see_whom_it_reaches(page, tmp_path):
    picture = poster(tmp_path / "apollo.png", BLUE)
    page.fill("#add-id", "apollo")
    page.fill("#add-title", "Rocket flight to the Moon")
    page.set_input_files("#add-image", str(picture))
    page.click("#add-go")
    page.wait_for_function("document.querySelector('#reach-summary').textContent.includes('is now in the top')")
    chips = page.eval_on_selector_all("#reach .user-chip", "cs => cs.map(c => c.textContent.split(' ')[0])")
    assert chips and sum(user_block(user) == 0 for user in chips) >= 0.8 * len(chips)
    page.click("#reach .user-chip")  # open the first reached user: the new item is in their list
    page.wait_for_function("[...document.querySelectorAll('#recs .card')].some(c => c.dataset.itemId === 'apollo')")
    page.screenshot(path=str(tmp_path / "added.png"), full_page=True)


def test_an_unknown_user_shows_the_apis_message(page):
    page.fill("#user-input", "nobody")
    page.click("#user-go")
    page.wait_for_selector("#message:not([hidden])")
    assert "unknown user 'nobody'" in page.text_content("#message")
