"""The web app driven in a real browser: headless Debian Chromium through Playwright, against the app on 127.0.0.1.

One visitor's session: the page loads (labelled as random weights) and fetches nothing from outside this machine;
they upload a picture and ask about it and the streamed answer appears, then ask a follow-up and get the second
turn of the same conversation; they generate a picture and it is rendered at the requested pixel size; they send it to
the Edit tab and edit it; they send it to the Inpaint tab, are told the mask is empty, paint a mask with the brush and
get the picture repainted where they painted; they submit an empty prompt and a size the model cannot draw and see the
messages. Each step leaves a screenshot in the test's temporary folder.
"""

import os
import re
import shutil
import socket

import pytest

from conftest import IMAGES


gr = pytest.importorskip("gradio", reason="the web app needs the `app` extra (pip install -e '.[app]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright for Python")

from llada_uni_app import AppSettings, ChatSession  # noqa: E402


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
    # Markdown rendering may drop or escape punctuation of the (random) answer; its ASCII letters and digits stay
    # (compared the same way in the page's JavaScript, whose `\W` is ASCII-only).
    return re.sub(r"[^A-Za-z0-9]+", "", text)


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


def _wait_for_answer(page, turn: int, expected: str):
    """Waits until the conversation's `turn`-th answer (1-based) reads `expected` (letters and digits compared)."""
    answer = page.locator('#chat-log [data-testid="bot"]').nth(turn - 1)
    answer.wait_for(state="visible")
    page.wait_for_function(
        "([el, want]) => el.innerText.replace(/[^A-Za-z0-9]+/g, '') === want",
        arg=[answer.element_handle(), _letters(expected)], timeout=TIMEOUT_MS,
    )
    assert _letters(answer.inner_text()) == _letters(expected) != ""


def _paint(page, editor, size: tuple[int, int], points: list[tuple[float, float]]):
    """One brush stroke through `points` (fractions of the picture's width and height) on a `size` px picture, which
    the editor shows centred in its canvas at the zoom it displays (strokes must start on the picture)."""
    canvas = editor.locator("canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    zoom = float(editor.locator(".zoom-number").inner_text().strip().rstrip("%")) / 100
    width, height = size[0] * zoom, size[1] * zoom
    left, top = box["x"] + (box["width"] - width) / 2, box["y"] + (box["height"] - height) / 2
    (fx, fy), *rest = points
    page.mouse.move(left + fx * width, top + fy * height)
    page.mouse.down()
    for fx, fy in rest:
        page.mouse.move(left + fx * width, top + fy * height, steps=5)
    page.mouse.up()


def test_a_visitor_converses_generates_edits_inpaints_and_gets_messages(app_url, tmp_path):
    executable = _browser_or_skip()
    url, engine = app_url
    picture = IMAGES / "landscape_150x100.png"
    question, follow_up = "What is in this picture?", "And what colours does it have?"
    # The same conversation made directly, before the page has it (the engine is idle then); the page's controls
    # start at the fixture's settings.
    settings = dict(gen_length=64, steps=8, decoder="turbo", decoder_steps=2, seed=0)
    session = ChatSession().with_user_turn(question, [str(picture)])
    first = engine.chat(session.request(**settings))
    session = session.with_reply(first, [f"picture-{i}.png" for i in range(len(first.images))])
    second = engine.chat(session.with_user_turn(follow_up).request(**settings))
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
            _wait_for_answer(page, 1, first.text)
            page.screenshot(path=shots / "02-chat-answer.png")
            # A follow-up without a picture: the model gets the whole conversation (the first turn's keys / values
            # reused), as the direct second turn did.
            page.locator("#chat-input textarea").fill(follow_up)
            page.locator("#chat-input textarea").press("Enter")
            _wait_for_answer(page, 2, second.text)
            assert page.locator('#chat-log [data-testid="bot"]').count() == 2
            sync_api.expect(page.locator("#chat-log")).to_contain_text(question)
            sync_api.expect(page.locator("#chat-log")).to_contain_text(follow_up)
            page.screenshot(path=shots / "03-chat-second-turn.png")

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
            page.screenshot(path=shots / "04-generated.png")

            # 3. Send it to the Edit tab and edit it.
            page.locator("#t2i-send-to-edit").click()
            page.locator("#edit-source img").first.wait_for(state="visible")
            page.locator("#edit-instruction textarea").fill("Make it a watercolor painting.")
            page.locator("#edit-run").click()
            assert _rendered_size(page, "#edit-output") == (256, 256)
            sync_api.expect(page.locator("#edit-details")).to_contain_text("8 x 8 codes")
            page.screenshot(path=shots / "05-edited.png")

            # 4. Send the generated picture to the Inpaint tab: no mask yet is a message; a brush stroke in its
            # upper-left corner repaints codes there only.
            page.get_by_role("tab", name="Create").click()
            page.locator("#t2i-send-to-inpaint").click()
            editor = page.locator("#inpaint-source")
            editor.locator("canvas").first.wait_for(state="visible")
            sync_api.expect(page.locator("#inpaint-mask-info")).to_contain_text("paint over the part to repaint")
            page.locator("#inpaint-prompt textarea").fill("A yellow sun.")
            page.locator("#inpaint-run").click()
            sync_api.expect(page.get_by_text("The mask is empty: paint over the part of the picture to repaint.")
                            ).to_be_visible()
            editor.get_by_role("button", name="Brush", exact=True).click()
            # The editing crop at a 128 px budget keeps the central 128 x 128 px of the 256 px picture: paint there.
            _paint(page, editor, (256, 256), [(0.42, 0.42), (0.48, 0.45), (0.52, 0.5)])
            # The page counts the painted codes as soon as the stroke reaches the server.
            info = page.locator("#inpaint-mask-info")
            sync_api.expect(info).to_contain_text(re.compile(r"Mask: \d+ of 64 codes will be repainted"),
                                                  timeout=TIMEOUT_MS)
            painted = int(re.search(r"Mask: (\d+) of 64", info.inner_text()).group(1))
            page.screenshot(path=shots / "06-mask-painted.png")
            page.locator("#inpaint-run").click()
            assert _rendered_size(page, "#inpaint-output") == (256, 256)
            sync_api.expect(page.locator("#inpaint-details")).to_contain_text("repainted")
            repainted = re.search(r"(\d+) of 64 codes, rows (\d+)-(\d+), columns (\d+)-(\d+)",
                                  page.locator("#inpaint-details").inner_text())
            assert repainted, page.locator("#inpaint-details").inner_text()
            count, top, bottom, left, right = map(int, repainted.groups())
            # Only the codes under the stroke, near the crop's centre, were repainted.
            assert count == painted and 0 < count < 64, repainted.group(0)
            assert 0 < top <= bottom < 7 and 0 < left <= right < 7, repainted.group(0)
            page.screenshot(path=shots / "07-inpainted.png")

            # 5. An empty prompt, then a size without size tokens: messages, not tracebacks.
            page.get_by_role("tab", name="Create").click()
            page.locator("#t2i-prompt textarea").fill("")
            page.locator("#t2i-run").click()
            sync_api.expect(page.get_by_text("The prompt is empty: describe the picture to generate.")).to_be_visible()
            page.screenshot(path=shots / "08-empty-prompt.png")
            page.locator("#t2i-prompt textarea").fill("A red fox")
            page.locator("#t2i-width input").fill("200")
            page.locator("#t2i-run").click()
            sync_api.expect(page.get_by_text(re.compile("Width 200 px gives 6 codes"))).to_be_visible()
            page.screenshot(path=shots / "09-size-without-size-tokens.png")
            assert "Traceback" not in page.content()
        finally:
            context.close()

    outside = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
    assert not outside, f"the page fetched from outside this machine: {outside}"
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-page.png", "02-chat-answer.png", "03-chat-second-turn.png", "04-generated.png", "05-edited.png",
        "06-mask-painted.png", "07-inpainted.png", "08-empty-prompt.png", "09-size-without-size-tokens.png",
    ]
