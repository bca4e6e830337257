"""The web app driven in a real browser: headless Debian Chromium through Playwright, against the app on 127.0.0.1.

One visitor's session: the page loads (labelled as random weights) and fetches nothing from outside this machine;
they upload a picture and ask about it and the streamed answer appears; they generate a picture and it is rendered
at the requested pixel size; they send it to the Edit tab and edit it; they submit an empty prompt and a size the
model cannot draw and see the messages. Each step leaves a screenshot in the test's temporary folder.
"""

import os
import re
import shutil
import socket

import pytest

from conftest import IMAGES


gr = pytest.importorskip("gradio", reason="the web app needs the `app` extra (pip install -e '.[app]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright for Python")

from llada_uni_app import AppSettings, ChatRequest  # noqa: E402


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No GPU, no sandbox (CI runs as root), and none of Chromium's own traffic (updates, sync, field trials, QUIC).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 120_000


def _browser_or_skip():
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI installs Debian's chromium (apt-get install -y chromium)")
    pytest.skip("Debian's chromium is not installed here (apt-get install -y chromium); CI installs it")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _letters(text: str) -> str:
    # Markdown rendering may drop or escape punctuation of the (random) answer; its letters and digits stay.
    return re.sub(r"[\W_]+", "", text)


@pytest.fixture(scope="module")
def app_url(single_thread):
    from llada_uni_app import launch

    settings = AppSettings(image_size=256, decoder_steps=2, steps=8, answer_length=64, answer_steps=8, edit_size=128)
    port = _free_port()
    demo = launch(host="127.0.0.1", port=port, settings=settings, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/", demo.scheduler.engine
    demo.close()
    demo.scheduler.close()


def _rendered_size(page, selector: str) -> tuple[int, int]:
    image = page.locator(f"{selector} img").first
    image.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth > 0", arg=image.element_handle(), timeout=TIMEOUT_MS
    )
    return tuple(image.evaluate("(el) => [el.naturalWidth, el.naturalHeight]"))


def test_a_visitor_asks_generates_edits_and_gets_messages(app_url, tmp_path):
    executable = _browser_or_skip()
    url, engine = app_url
    picture = IMAGES / "landscape_150x100.png"
    question = "What is in this picture?"
    # The same call made directly, before the page asks it (the engine is idle then).
    expected = engine.chat(ChatRequest(
        [{"role": "user", "content": [{"type": "image", "image": str(picture)}, {"type": "text", "text": question}]}],
        gen_length=64, steps=8,
    ))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    requested = []

    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url)
            sync_api.expect(page.locator("#random-weights")).to_contain_text("Random weights")
            page.screenshot(path=shots / "01-page.png")

            # 1. Upload a picture, ask, and see the answer stream in.
            page.locator("#chat-input input[type=file]").set_input_files(str(picture))
            page.locator("#chat-input img").first.wait_for(state="visible")
            page.locator("#chat-input textarea").fill(question)
            page.locator("#chat-input textarea").press("Enter")
            answer = page.locator('#chat-log [data-testid="bot"]').last
            answer.wait_for(state="visible")
            page.wait_for_function(
                "([el, want]) => el.innerText.replace(/[\\W_]+/g, '') === want",
                arg=[answer.element_handle(), _letters(expected)], timeout=TIMEOUT_MS,
            )
            assert _letters(answer.inner_text()) == _letters(expected) != ""
            page.screenshot(path=shots / "02-chat-answer.png")

            # 2. Generate a picture; the progress bar names the blocks; the picture has the requested size.
            page.get_by_role("tab", name="Create").click()
            page.locator("#t2i-prompt textarea").fill("A red fox in the snow")
            page.evaluate(
                """() => { window.__progress = [];
                   new MutationObserver(() => {
                       const text = document.querySelector('#t2i-output')?.innerText || '';
                       if (text.includes('Block') || text.includes('Decoding')) window.__progress.push(text);
                   }).observe(document.querySelector('#t2i-output'), {subtree: true, childList: true,
                                                                     characterData: true}); }"""
            )
            page.locator("#t2i-run").click()
            assert _rendered_size(page, "#t2i-output") == (256, 256)
            sync_api.expect(page.locator("#t2i-details")).to_contain_text("8 x 8 codes")
            progress = page.evaluate("() => window.__progress")
            assert any(re.search(r"Block \d+: \d+ / 64 codes", text) for text in progress), progress
            page.screenshot(path=shots / "03-generated.png")

            # 3. Send it to the Edit tab and edit it.
            page.locator("#t2i-send-to-edit").click()
            page.locator("#edit-source img").first.wait_for(state="visible")
            page.locator("#edit-instruction textarea").fill("Make it a watercolor painting.")
            page.locator("#edit-run").click()
            assert _rendered_size(page, "#edit-output") == (256, 256)
            sync_api.expect(page.locator("#edit-details")).to_contain_text("8 x 8 codes")
            page.screenshot(path=shots / "04-edited.png")

            # 4. An empty prompt, then a size without size tokens: messages, not tracebacks.
            page.get_by_role("tab", name="Create").click()
            page.locator("#t2i-prompt textarea").fill("")
            page.locator("#t2i-run").click()
            sync_api.expect(page.get_by_text("The prompt is empty: describe the picture to generate.")).to_be_visible()
            page.screenshot(path=shots / "05-empty-prompt.png")
            page.locator("#t2i-prompt textarea").fill("A red fox")
            page.locator("#t2i-width input").fill("200")
            page.locator("#t2i-run").click()
            sync_api.expect(page.get_by_text(re.compile("Width 200 px gives 6 codes"))).to_be_visible()
            page.screenshot(path=shots / "06-size-without-size-tokens.png")
            assert "Traceback" not in page.content()
        finally:
            context.close()

    outside = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
    assert not outside, f"the page fetched from outside this machine: {outside}"
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-page.png", "02-chat-answer.png", "03-generated.png", "04-edited.png", "05-empty-prompt.png",
        "06-size-without-size-tokens.png",
    ]
