"""The web app's model side (engine, scheduler), its page's error messages through Gradio's client, `llada-uni app`
and the Space's `app.py`. The browser test and the load check have their own modules."""

import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import IMAGES


gr = pytest.importorskip("gradio", reason="the web app needs the `app` extra (pip install -e '.[app]')")

from llada_uni_app import (  # noqa: E402
    AppEngine,
    AppSettings,
    ChatRequest,
    ChatSession,
    EditRequest,
    InpaintRequest,
    RequestScheduler,
    TextToImageRequest,
)


REPO = Path(__file__).resolve().parents[1]
SMALL = dict(decoder_steps=2, steps=8)


@pytest.fixture(scope="module")
def engine(single_thread):
    return AppEngine.from_pretrained()


@pytest.fixture()
def scheduler(engine):
    scheduler = RequestScheduler(engine, max_batch_size=4, batch_window_s=0.5)
    yield scheduler
    scheduler.close()


def _pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _question(picture, text="What is in this picture?"):
    return [{"role": "user", "content": [{"type": "image", "image": picture}, {"type": "text", "text": text}]}]


# ------------------------------------------------------------------------------------------------ engine


def test_engine_labels_the_bundled_model_and_shares_one_set_of_parts(engine):
    assert engine.random_weights and engine.decoders == ["turbo", "normal"]
    parts = engine.text_to_image_pipeline.components
    for pipe in (engine.edit_pipeline, engine.inpaint_pipeline, engine.chat_pipeline):
        assert all(pipe.components[name] is part for name, part in parts.items())


def test_engine_calls_equal_the_pipelines(engine):
    pipe = engine.text_to_image_pipeline
    request = TextToImageRequest("A red fox in the snow", 256, 256, seed=3, **SMALL)
    result = engine.text_to_image([request])[0]
    direct = pipe("A red fox in the snow", height=256, width=256, steps=8, num_inference_steps=2,
                  generator=torch.Generator().manual_seed(3))
    assert result.codes == direct.image_tokens[0].tolist() and result.grid == (8, 8)
    assert np.array_equal(_pixels(result.image), _pixels(direct.images[0]))

    edited = engine.edit([EditRequest(result.image, "Make it blue.", edit_size=128, seed=1, **SMALL)])[0]
    direct = engine.edit_pipeline(result.image, "Make it blue.", steps=8, image_kwargs={"edit_image_size": 128},
                                  num_inference_steps=2, generator=torch.Generator().manual_seed(1))
    assert edited.codes == direct.image_tokens[0].tolist()
    assert np.array_equal(_pixels(edited.image), _pixels(direct.images[0]))

    mask = _corner_mask(result.image.size)
    repainted = engine.inpaint([InpaintRequest(result.image, mask, "A yellow sun.", edit_size=256, seed=2,
                                               **SMALL)])[0]
    direct = engine.inpaint_pipeline(result.image, mask, "A yellow sun.", steps=8,
                                     image_kwargs={"edit_image_size": 256}, num_inference_steps=2,
                                     generator=torch.Generator().manual_seed(2))
    assert repainted.codes == direct.image_tokens[0].tolist()
    assert torch.equal(repainted.repainted, direct.repaint_masks[0].cpu()) and 0 < int(repainted.repainted.sum()) < 256
    assert np.array_equal(_pixels(repainted.image), _pixels(direct.images[0]))
    assert "repainted" in repainted.details()

    picture = str(IMAGES / "landscape_150x100.png")
    reply = engine.chat(ChatRequest(_question(picture), gen_length=64, steps=8, decoder_steps=2, seed=4))
    direct = engine.chat_pipeline(_question(picture), max_new_tokens=64, steps=8, block_length=32,
                                  num_inference_steps=2, generator=torch.Generator().manual_seed(4))
    assert reply.text == direct.text != "" and len(reply.images) == len(direct.images)
    assert reply.history.messages[-1]["content"] == direct.history.messages[-1]["content"]


def _corner_mask(size, box=(0, 0, 100, 80)):
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def test_a_conversation_continues_with_its_history_and_reuse_changes_nothing(engine):
    """Three turns, pictures in turns 1 and 3, as the page builds them: each turn the model gets the whole
    conversation (the earlier pictures as ids), and reusing the finished turns' keys / values gives the same answer as
    encoding the whole history again."""
    from dataclasses import replace

    settings = dict(gen_length=32, steps=8, decoder_steps=2)
    session = ChatSession()
    turns = [("Describe it.", [str(IMAGES / "landscape_150x100.png")]), ("What colour is it?", []),
             ("And this one?", [str(IMAGES / "portrait_90x200.png")])]
    for index, (text, pictures) in enumerate(turns):
        session = session.with_user_turn(text, pictures)
        request = session.request(**settings)
        if index:
            # The model's side of the earlier turns: the history's messages (pictures already ids), then this turn.
            assert request.messages[:-1] == session.history.messages and request.history is session.history
        reply = engine.chat(request)
        again = engine.chat(replace(request, history=None))
        assert reply.text == again.text and reply.text
        session = session.with_reply(reply, [f"picture-{i}.png" for i in range(len(reply.images))])
    assert [m["role"] for m in session.messages] == ["user", "assistant"] * 3
    assert len(session.history.messages) == 6
    first_picture = session.history.messages[0]["content"][0]["image"]
    assert {"image_tokens", "h", "w"} <= set(first_picture)


def test_inpainting_reports_progress_over_the_masked_codes_then_the_decoder(engine, scheduler):
    picture = Image.open(IMAGES / "square_64x64_rgba.png")
    job = scheduler.submit(InpaintRequest(picture, _corner_mask(picture.size, (0, 0, 32, 32)), "Make it red.",
                                          edit_size=128, **SMALL))
    updates = [u for u in job.updates() if u.kind == "progress"]
    result = job.result()
    cells = int(result.repainted.sum())
    blocks = [u for u in updates if u.text.startswith("Block ")]
    assert blocks and blocks[-1].text.endswith(f"{cells} / {cells} codes repainted") and blocks[-1].fraction == 1.0
    assert [u.text for u in updates if u.text.startswith("Decoding")] == ["Decoding: step 1 / 2",
                                                                         "Decoding: step 2 / 2"]
    assert scheduler.batch_sizes["inpaint"] == [1]


@pytest.mark.parametrize("request_args, message", [
    (("text", dict(prompt="   ")), "The prompt is empty"),
    (("text", dict(prompt="a fox", width=200)), "Width 200 px gives 6 codes"),
    (("text", dict(prompt="a fox", height=4096)), "larger than this app allows"),
    (("text", dict(prompt="a fox", decoder="fast")), "Unknown decoder 'fast'"),
    (("text", dict(prompt="a fox", seed=-1)), "The seed must be"),
    (("edit", dict(instruction="")), "The instruction is empty"),
    (("edit", dict(instruction="x", picture="portrait_90x200.png")), "no size token for 4 codes"),
    (("chat", dict(messages=_question(str(IMAGES / "landscape_150x100.png"), " "))), "The message is empty"),
    (("chat", dict(messages=[])), "The conversation is empty"),
    (("chat", dict(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])),
     "must end with the user's turn"),
    (("chat", dict(messages=[{"role": "user", "content": "hi"}], gen_length=0)), "Answer length must be"),
    (("inpaint", dict(prompt="")), "The prompt is empty"),
    (("inpaint", dict(prompt="x", mask=(0, 0, 0, 0))), "The mask is empty"),
    (("inpaint", dict(prompt="x", mask=(0, 0, 10, 10), size=(256, 256))), "The painted area lies outside the part"),
    (("inpaint", dict(prompt="x", mask_size=(32, 32))), "The mask is 32 x 32 px but the picture is 64 x 64 px"),
    (("inpaint", dict(prompt="x", conditioning="caption")), "Conditioning must be one of"),
    (("inpaint", dict(prompt="x", mask_dilation=-1)), "Mask growth must be"),
])
def test_bad_requests_are_refused_with_a_readable_message(engine, scheduler, request_args, message):
    kind, args = request_args
    if kind == "text":
        request = TextToImageRequest(**{"height": 256, "width": 256, **args})
    elif kind == "edit":
        picture = Image.open(IMAGES / args.pop("picture", "square_64x64_rgba.png"))
        request = EditRequest(picture, args["instruction"], edit_size=128)
    elif kind == "inpaint":
        picture = Image.open(IMAGES / "square_64x64_rgba.png").resize(args.pop("size", (64, 64)))
        mask = _corner_mask(args.pop("mask_size", picture.size), args.pop("mask", (0, 0, 32, 32)))
        request = InpaintRequest(picture, mask, edit_size=128, **args)
    else:
        request = ChatRequest(**args)
    with pytest.raises(ValueError, match=message):
        scheduler.submit(request)
    assert scheduler.batch_sizes == {"text_to_image": [], "edit": [], "inpaint": [], "chat": []}


def test_a_chat_history_of_another_kind_is_refused(engine):
    with pytest.raises(TypeError, match="`history` must be a LLaDAUniChatHistory"):
        engine.chat(ChatRequest([{"role": "user", "content": "hi"}], history={"messages": []}))


def test_a_file_that_is_not_a_picture_is_named_in_the_message(engine, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(ValueError, match=r"'report.pdf' is not a picture"):
        engine.load_picture(notes, name="report.pdf")
    with pytest.raises(ValueError, match="No picture"):
        engine.load_picture(None)


# ------------------------------------------------------------------------------------------------ scheduler


def test_scheduler_batches_compatible_requests_and_each_gets_its_own_result(engine, scheduler):
    prompts = ["A red fox", "A lighthouse at dusk, oil painting", "Two cats"]
    jobs = [scheduler.submit(TextToImageRequest(p, 256, 256, seed=i, **SMALL)) for i, p in enumerate(prompts)]
    other = scheduler.submit(TextToImageRequest("A tall tower", 320, 256, seed=7, **SMALL))
    results = [job.result(timeout=300) for job in jobs]
    assert other.result(timeout=300).image.size == (256, 320)
    # One call for the three 256 x 256 prompts, one for the other size.
    assert scheduler.batch_sizes["text_to_image"] == [3, 1]
    for prompt, index, result in zip(prompts, range(3), results):
        alone = engine.text_to_image([TextToImageRequest(prompt, 256, 256, seed=index, **SMALL)])[0]
        assert result.codes == alone.codes
        # A batched decoder call may round the last bit of a few pixels differently from a single one.
        assert np.abs(_pixels(result.image) - _pixels(alone.image)).max() <= 1


def test_scheduler_reports_progress_per_block_then_per_decoder_step(scheduler):
    job = scheduler.submit(TextToImageRequest("A red fox", 256, 256, **SMALL))
    updates = list(job.updates())
    job.result()
    blocks = [u for u in updates if u.text.startswith("Block ")]
    decoding = [u for u in updates if u.text.startswith("Decoding")]
    assert updates[0].kind == "queued" and blocks and decoding
    assert {u.text.split(":")[0] for u in blocks} >= {"Block 1", "Block 2"}
    fractions = [u.fraction for u in blocks]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [u.text for u in decoding] == ["Decoding: step 1 / 2", "Decoding: step 2 / 2"]


def test_chat_streams_the_answer_block_by_block(engine, scheduler):
    job = scheduler.submit(ChatRequest(_question(str(IMAGES / "landscape_150x100.png")), gen_length=64, steps=8))
    texts = [u.text for u in job.updates() if u.kind == "text"]
    reply = job.result()
    assert len(texts) >= 2 and texts[-1] == reply.text and reply.text
    assert scheduler.batch_sizes["chat"] == [1]


def test_thinking_mode_returns_the_reasoning(engine):
    result = engine.text_to_image([TextToImageRequest("A red fox", 256, 256, thinking=True, **SMALL)])[0]
    plain = engine.text_to_image([TextToImageRequest("A red fox", 256, 256, **SMALL)])[0]
    assert isinstance(result.thinking, str) and plain.thinking is None


def test_a_failing_call_fails_every_request_of_its_batch_and_the_worker_goes_on(engine, scheduler, monkeypatch):
    def broken(requests, progress):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "_text_to_image", broken)
    jobs = [scheduler.submit(TextToImageRequest(p, 256, 256, **SMALL)) for p in ("a", "b")]
    for job in jobs:
        with pytest.raises(RuntimeError, match="out of memory"):
            job.result(timeout=60)
    monkeypatch.undo()
    assert scheduler.submit(ChatRequest(_question(str(IMAGES / "square_64x64_rgba.png")), gen_length=32,
                                        steps=8)).result(timeout=120)


# ------------------------------------------------------------------------------------------------ the page's messages


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(engine):
    from llada_uni_app.launcher import launch_options
    from llada_uni_app.ui import create_demo

    demo = create_demo(engine, AppSettings(image_size=256, decoder_steps=2, answer_length=32, answer_steps=8,
                                           edit_size=128))
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    demo.scheduler.close()


def test_the_page_answers_bad_inputs_with_messages_not_tracebacks(served, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    client = Client(served, verbose=False, download_files=str(tmp_path), analytics_enabled=False)
    try:
        cases = [
            (("", 256, 256, "turbo", 2, False, 0, 8, 4.0), "/text_to_image", "The prompt is empty"),
            (("a fox", 200, 256, "turbo", 2, False, 0, 8, 4.0), "/text_to_image", "Width 200 px gives 6 codes"),
            ((None, "make it blue", "edit", 128, "turbo", 2, 0, 8, 4.0, 0.0), "/edit", "No picture to edit"),
            ((handle_file(str(notes)), "make it blue", "edit", 128, "turbo", 2, 0, 8, 4.0, 0.0), "/edit",
             "'notes.txt' is not a picture"),
            (({"text": "What is it?", "files": [handle_file(str(notes))]}, 32, 8, "turbo", 2, 0), "/chat",
             "'notes.txt' is not a picture"),
            (({"text": " ", "files": []}, 32, 8, "turbo", 2, 0), "/chat", "The message is empty"),
            ((None, "a sun", "edit", 0, "edit", 128, "turbo", 2, 0, 8, 4.0, 0.0), "/inpaint",
             "No picture to repaint"),
            ((_editor(notes), "a sun", "edit", 0, "edit", 128, "turbo", 2, 0, 8, 4.0, 0.0), "/inpaint",
             "That upload is not a picture"),
            ((_editor(IMAGES / "square_64x64_rgba.png"), "a sun", "edit", 0, "edit", 128, "turbo", 2, 0, 8, 4.0, 0.0),
             "/inpaint", "The mask is empty"),
        ]
        for args, api_name, message in cases:
            with pytest.raises(AppError, match=message) as info:
                client.predict(*args, api_name=api_name)
            assert "Traceback" not in str(info.value)
        image, reasoning, details = client.predict("a fox", 256, 256, "turbo", 2, False, 0, 8, 4.0,
                                                   api_name="/text_to_image")
        assert Image.open(image).size == (256, 256) and details["grid"] == "8 x 8 codes" and reasoning == ""
        layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        layer.paste((255, 0, 255, 140), (0, 0, 32, 32))
        layer.save(tmp_path / "layer.png")
        image, details = client.predict(_editor(IMAGES / "square_64x64_rgba.png", tmp_path / "layer.png"), "a sun",
                                        "edit", 0, "edit", 128, "turbo", 2, 0, 8, 4.0, 0.0, api_name="/inpaint")
        assert Image.open(image).size == (256, 256) and details["repainted"].startswith("4 of 64 codes")
    finally:
        client.close()


def _editor(background, *layers):
    """An image editor's value as Gradio's client sends it."""
    from gradio_client import handle_file

    return {"background": handle_file(str(background)), "layers": [handle_file(str(layer)) for layer in layers],
            "composite": None}


def test_a_client_session_is_one_conversation_until_it_starts_a_new_one(served, tmp_path):
    from gradio_client import Client, handle_file

    picture = str(IMAGES / "landscape_150x100.png")
    client = Client(served, verbose=False, download_files=str(tmp_path), analytics_enabled=False)
    try:
        first, _ = client.predict({"text": "What is it?", "files": [handle_file(picture)]}, 32, 8, "turbo", 2, 0,
                                  api_name="/chat")
        second, _ = client.predict({"text": "And its colours?", "files": []}, 32, 8, "turbo", 2, 0, api_name="/chat")
        client.predict(api_name="/new_conversation")
        fresh, _ = client.predict({"text": "And its colours?", "files": []}, 32, 8, "turbo", 2, 0, api_name="/chat")
    finally:
        client.close()
    # The second answer continues the first turn (the model saw it), the fresh one starts over.
    assert second[: len(first)] == first and [m["role"] for m in second[len(first):]] == ["user", "assistant"]
    assert [m["role"] for m in fresh] == ["user", "assistant"] and fresh[0] == second[len(first)]
    assert second[-1]["content"] != fresh[-1]["content"]


# ------------------------------------------------------------------------------------------------ command line, Space


def _console_script():
    import shutil
    import sysconfig

    found = shutil.which("llada-uni") or shutil.which("llada-uni", path=sysconfig.get_path("scripts"))
    assert found, "the `llada-uni` console script is not installed; run README's install command"
    return found


def test_app_subcommand_help_and_usage_errors(capsys):
    from llada_uni_cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["app", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for option in ("--model", "--host", "--port", "--max-queue", "--max-batch", "--seed", "--device", "--dtype"):
        assert option in out
    with pytest.raises(SystemExit) as info:
        main(["app", "--port", "70000"])
    assert info.value.code == 2 and "a TCP port" in capsys.readouterr().err


def test_app_subcommand_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    from llada_uni_cli.main import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails as on a machine without it
    assert main(["app"]) == 1
    assert capsys.readouterr().err.strip() == (
        "llada-uni app: error: the web app needs the `app` extra (gradio is not installed): "
        "pip install -e \".[app]\""
    )


def test_llada_uni_app_serves_the_page_and_stops_cleanly(tmp_path):
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), GRADIO_ANALYTICS_ENABLED="False",
               OMP_NUM_THREADS="1")
    process = subprocess.Popen([_console_script(), "app", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, config = time.monotonic() + 240, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    config = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert config is not None, f"the app did not come up: {process.communicate(timeout=30)}"
        assert "Random weights" in config and "text_to_image" in config
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "RANDOM weights" in out and "Traceback" not in err


def test_space_entry_point_builds_the_app(engine):
    namespace = runpy.run_path(str(REPO / "app.py"))
    demo = namespace["demo"]
    try:
        assert isinstance(demo, gr.Blocks) and demo.scheduler.engine.random_weights
        assert {"chat", "text_to_image", "edit", "inpaint"} <= {fn.api_name for fn in demo.fns.values()}
    finally:
        demo.scheduler.close()
