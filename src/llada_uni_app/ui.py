# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The Gradio page: a header naming the model, then one tab per task (chat, create, edit, inpaint).

Each tab is built by one function of `TABS` from a shared [`_Page`] (the engine, the scheduler, the settings, and the
components other tabs need); cross-tab buttons are wired after every tab exists. A new task is one more function in
`TABS`, one request type in `engine.py` and its runner in `scheduler.py`.

Every handler turns a `ValueError` / `TypeError` from the engine into `gr.Error`, so a bad input shows a message in the
page; any other failure is logged on the server and the page says that the server failed, without a traceback.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import PIL.Image
import PIL.ImageChops
from gradio.components.image_editor import EditorData

from .engine import AppEngine, ChatSession, EditRequest, InpaintRequest, TextToImageRequest
from .scheduler import Job, RequestScheduler
from .settings import AppSettings


logger = logging.getLogger(__name__)

# Every model event shares one concurrency slot group: the scheduler's worker runs them one call at a time, and as
# many events as fit in one batch may wait there at once; the rest wait in Gradio's bounded queue.
MODEL_CONCURRENCY_ID = "llada-uni-model"

# The brush paints the mask in a translucent colour over the picture (the mask is where any paint is).
MASK_COLOUR = ("#ff00ff", 0.55)

CSS = """
#random-weights { border: 2px solid #d97706; border-radius: 8px; padding: 4px 12px; background: #fffbeb; }
#random-weights p { color: #78350f; }
"""


@dataclass
class _Page:
    engine: AppEngine
    scheduler: RequestScheduler
    settings: AppSettings
    tabs: Any = None
    components: dict[str, Any] = field(default_factory=dict)

    def model_event(self, trigger: Callable, fn: Callable, inputs, outputs, api_name: str | None, **kwargs):
        """An event that uses the model: queued, in the model's concurrency group."""
        return trigger(
            fn, inputs=inputs, outputs=outputs, api_name=api_name, concurrency_id=MODEL_CONCURRENCY_ID,
            concurrency_limit=self.settings.max_batch_size, **kwargs,
        )


# ---------------------------------------------------------------------------------------------------- helpers


def _submit(page: _Page, request) -> Job:
    try:
        return page.scheduler.submit(request)
    except (ValueError, TypeError) as err:
        raise gr.Error(str(err), title="Check the input") from None


def _outcome(job: Job):
    try:
        return job.result()
    except (ValueError, TypeError) as err:
        raise gr.Error(str(err), title="Check the input") from None
    except Exception as err:  # noqa: BLE001 - the page gets a sentence, the server log the traceback
        logger.exception("A request failed")
        raise gr.Error(f"The server failed on this request ({type(err).__name__}). Please try again.",
                       title="Server error") from None


def _follow(job: Job, progress: gr.Progress):
    for update in job.updates():
        progress(update.fraction, desc=update.text)


def _whole(value, name: str):
    """A control's number as an int (Gradio sends floats for whole-number sliders)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise gr.Error(f"{name} must be a whole number, got {value!r}.", title="Check the input")
    return int(value)


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise gr.Error(f"{name} must be a number, got {value!r}.", title="Check the input")
    return float(value)


def _decoder_kinds(engine: AppEngine) -> list[str]:
    # A folder without decoders still shows the choices; a request then says which decoder is missing.
    return engine.decoders or ["turbo", "normal"]


def _decoder_choices(engine: AppEngine) -> list[tuple[str, str]]:
    labels = {"turbo": f"Turbo ({engine.default_decoder_steps('turbo')} steps)",
              "normal": "Original (50-step schedule)"}
    return [(labels[kind], kind) for kind in _decoder_kinds(engine)]


def _decoder_controls(page: _Page, prefix: str):
    engine, settings = page.engine, page.settings
    kinds = _decoder_kinds(engine)
    decoder_value = settings.decoder if settings.decoder in kinds else kinds[0]
    with gr.Row():
        decoder = gr.Radio(_decoder_choices(engine), value=decoder_value, label="Image decoder",
                           elem_id=f"{prefix}-decoder")
        steps = gr.Slider(1, 100, step=1, label="Decoder steps (model calls)",
                          value=settings.decoder_steps or engine.default_decoder_steps(decoder_value),
                          elem_id=f"{prefix}-decoder-steps")
    decoder.change(lambda kind: engine.default_decoder_steps(kind), decoder, steps, queue=False,
                   api_visibility="private")
    return decoder, steps


def _crop_controls(settings: AppSettings, prefix: str):
    """How a picture is cropped for editing and inpainting: the fit and the crop budget."""
    with gr.Row():
        crop_mode = gr.Radio([("Crop (original)", "edit"), ("Resize, then crop", "edit_resize_crop")],
                             value=settings.crop_mode, label="Fit", elem_id=f"{prefix}-crop-mode")
        edit_size = gr.Dropdown([128, 256, 512, 1024], label="Crop budget (px)", value=settings.edit_size or 512,
                                elem_id=f"{prefix}-size")
    return crop_mode, edit_size


def _header(engine: AppEngine) -> str:
    return (f"# LLaDA2.0-Uni\nOne masked-diffusion model that reads and writes text and pictures: ask about a "
            f"picture, create one from a prompt, edit one, or repaint part of one.\n\nModel: **{engine.name}**")


RANDOM_WEIGHTS_NOTICE = (
    "**Random weights.** This is the tiny demo model that ships with the package: its pictures are noise and its "
    "answers are gibberish. They show that every step runs end to end, not what the model can do. Start "
    "`llada-uni app --model PATH` with a converted LLaDA2.0-Uni folder for real results."
)


def chat_tab(page: _Page) -> None:
    r"""A conversation with pictures in any turn: upload, ask, the answer streams block by block; pictures the model
    draws appear in the conversation. Every turn is given to the model, whose finished turns are reused."""
    engine, settings = page.engine, page.settings
    with gr.Tab("Chat", id="chat"):
        gr.Markdown(
            "Talk with the model about pictures (upload them with any message), or ask it to draw. The whole "
            "conversation is the model's context; pictures it draws can be referred to in later turns."
        )
        chatbot = gr.Chatbot(label="Conversation", elem_id="chat-log", height=380, buttons=["copy"])
        message = gr.MultimodalTextbox(
            placeholder="Type a message; attach pictures if you like", file_types=["image"], file_count="multiple",
            sources=["upload"], show_label=False, elem_id="chat-input",
        )
        with gr.Accordion("Answer settings", open=False):
            with gr.Row():
                length = gr.Slider(32, 4096, step=32, value=settings.answer_length, label="Most answer tokens",
                                   elem_id="chat-length")
                steps = gr.Slider(1, 64, step=1, value=settings.answer_steps, label="Denoising steps per block",
                                  elem_id="chat-steps")
                seed = gr.Number(settings.seed, label="Seed", precision=0, minimum=0, elem_id="chat-seed")
            decoder, decoder_steps = _decoder_controls(page, "chat")
        clear = gr.Button("New conversation", variant="secondary", elem_id="chat-clear")
        # Each visitor's conversation, with the model's reusable keys / values: freed after `conversation_ttl_s` idle.
        session = gr.State(None, time_to_live=settings.conversation_ttl_s)

    def respond(message_value, session_value, length_value, steps_value, decoder_value, decoder_steps_value,
                seed_value):
        # Unprocessed inputs (`preprocess=False`), as in the editing tab: a file that is not a picture gets this
        # app's message; Gradio has already checked that every file is an upload.
        session_value = session_value if isinstance(session_value, ChatSession) else ChatSession()
        message_value = message_value or {}
        pictures = []
        for payload in message_value.get("files") or []:
            path, name = _uploaded_file(payload)
            try:
                engine.load_picture(path, name=name)
            except ValueError as err:
                raise gr.Error(str(err), title="Not a picture") from None
            pictures.append(path)
        candidate = session_value.with_user_turn((message_value.get("text") or "").strip(), pictures)
        job = _submit(page, candidate.request(
            gen_length=_whole(length_value, "Most answer tokens"), steps=_whole(steps_value, "Steps per block"),
            decoder=decoder_value, decoder_steps=_whole(decoder_steps_value, "Decoder steps"),
            seed=_whole(seed_value, "Seed") or 0,
        ))
        shown = _display(candidate)
        yield shown + [{"role": "assistant", "content": "…"}], session_value, None
        try:
            text = ""
            for update in job.updates():
                if update.kind == "text":
                    text = update.text
                    yield shown + [{"role": "assistant", "content": text}], session_value, gr.skip()
                elif update.kind == "progress":
                    yield (shown + [{"role": "assistant", "content": f"{text}\n\n*{update.text}…*".strip()}],
                           session_value, gr.skip())
            reply = _outcome(job)
        except GeneratorExit:
            job.cancel()
            raise
        except gr.Error:
            # The failed turn leaves the conversation as it was; the message says why.
            yield _display(session_value), session_value, gr.skip()
            raise
        files = [gr.processing_utils.save_pil_to_cache(picture, gr.utils.get_upload_folder(), "reply", "png")
                 for picture in reply.images]
        finished = candidate.with_reply(reply, files)
        yield _display(finished), finished, gr.skip()

    page.model_event(message.submit, respond,
                     [message, session, length, steps, decoder, decoder_steps, seed], [chatbot, session, message],
                     api_name="chat", preprocess=False)
    clear.click(lambda: ([], None, None), None, [chatbot, session, message], queue=False, api_name="new_conversation")


def create_tab(page: _Page) -> None:
    r"""Text-to-image: prompt, size, decoder, thinking, seed; a progress bar follows the blocks, then the decoder."""
    settings = page.settings
    with gr.Tab("Create", id="create"):
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", placeholder="A red fox in the snow", lines=2,
                                    elem_id="t2i-prompt")
                with gr.Row():
                    width = gr.Number(settings.image_size, label="Width (px)", precision=0, step=32,
                                      elem_id="t2i-width")
                    height = gr.Number(settings.image_size, label="Height (px)", precision=0, step=32,
                                       elem_id="t2i-height")
                decoder, decoder_steps = _decoder_controls(page, "t2i")
                with gr.Row():
                    thinking = gr.Checkbox(False, label="Think first (the reasoning is shown)", elem_id="t2i-thinking")
                    seed = gr.Number(settings.seed, label="Seed", precision=0, minimum=0, elem_id="t2i-seed")
                with gr.Accordion("Language model", open=False):
                    steps = gr.Slider(1, 64, step=1, value=settings.steps, label="Denoising steps per block")
                    cfg = gr.Slider(0.0, 10.0, step=0.5, value=settings.cfg_scale, label="Guidance scale")
                run = gr.Button("Generate", variant="primary", elem_id="t2i-run")
            with gr.Column():
                image = gr.Image(label="Picture", type="pil", format="png", interactive=False,
                                 elem_id="t2i-output")
                reasoning = gr.Textbox(label="Reasoning", lines=4, visible=False, interactive=False,
                                       elem_id="t2i-reasoning")
                details = gr.JSON(label="Details", open=False, elem_id="t2i-details")
                with gr.Row():
                    send = gr.Button("Edit this picture", elem_id="t2i-send-to-edit")
                    send_inpaint = gr.Button("Repaint part of it", elem_id="t2i-send-to-inpaint")

    def generate(prompt_value, width_value, height_value, decoder_value, decoder_steps_value, thinking_value,
                 seed_value, steps_value, cfg_value, progress=gr.Progress()):
        request = TextToImageRequest(
            prompt=prompt_value or "", height=_whole(height_value, "Height"), width=_whole(width_value, "Width"),
            thinking=bool(thinking_value), decoder=decoder_value,
            decoder_steps=_whole(decoder_steps_value, "Decoder steps"), steps=_whole(steps_value, "Steps per block"),
            cfg_scale=_real(cfg_value, "Guidance scale"), seed=_whole(seed_value, "Seed") or 0,
        )
        job = _submit(page, request)
        _follow(job, progress)
        result = _outcome(job)
        return result.image, result.thinking or "", result.details()

    thinking.change(lambda on: gr.Textbox(visible=on), thinking, reasoning, queue=False, api_visibility="private")
    inputs = [prompt, width, height, decoder, decoder_steps, thinking, seed, steps, cfg]
    outputs = [image, reasoning, details]
    page.model_event(run.click, generate, inputs, outputs, api_name="text_to_image", show_progress_on=image)
    page.model_event(prompt.submit, generate, inputs, outputs, api_name=None, api_visibility="private",
                     show_progress_on=image)
    page.components.update(generated_image=image, send_to_edit=send, send_to_inpaint=send_inpaint)


def edit_tab(page: _Page) -> None:
    r"""Editing: a picture and an instruction."""
    engine, settings = page.engine, page.settings
    with gr.Tab("Edit", id="edit"):
        with gr.Row():
            with gr.Column():
                source = gr.Image(label="Picture to edit", type="filepath", format="png",
                                  sources=["upload", "clipboard"], elem_id="edit-source")
                instruction = gr.Textbox(label="Instruction", placeholder="Make it a watercolor painting", lines=2,
                                         elem_id="edit-instruction")
                crop_mode, edit_size = _crop_controls(settings, "edit")
                decoder, decoder_steps = _decoder_controls(page, "edit")
                seed = gr.Number(settings.seed, label="Seed", precision=0, minimum=0, elem_id="edit-seed")
                with gr.Accordion("Language model", open=False):
                    steps = gr.Slider(1, 64, step=1, value=settings.steps, label="Denoising steps per block")
                    cfg_text = gr.Slider(0.0, 10.0, step=0.5, value=settings.cfg_text_scale,
                                         label="Instruction guidance")
                    cfg_image = gr.Slider(0.0, 10.0, step=0.5, value=settings.cfg_image_scale,
                                          label="Picture guidance")
                run = gr.Button("Edit", variant="primary", elem_id="edit-run")
            with gr.Column():
                image = gr.Image(label="Edited picture", type="pil", format="png", interactive=False,
                                 elem_id="edit-output")
                details = gr.JSON(label="Details", open=False, elem_id="edit-details")

    def edit(source_value, instruction_value, crop_mode_value, edit_size_value, decoder_value, decoder_steps_value,
             seed_value, steps_value, cfg_text_value, cfg_image_value, progress=gr.Progress()):
        # Inputs arrive unprocessed (`preprocess=False`) so a file that is not a picture gets this app's message
        # instead of the image component's failure; Gradio has already checked that the file is an upload.
        path, name = _uploaded_file(source_value)
        if path is None:
            raise gr.Error("No picture to edit: upload one first.", title="Check the input")
        try:
            picture = engine.load_picture(path, name=name)
        except ValueError as err:
            raise gr.Error(str(err), title="Not a picture") from None
        request = EditRequest(
            image=picture, instruction=instruction_value or "", crop_mode=crop_mode_value,
            edit_size=_whole(edit_size_value, "Crop budget"), decoder=decoder_value,
            decoder_steps=_whole(decoder_steps_value, "Decoder steps"), steps=_whole(steps_value, "Steps per block"),
            cfg_text_scale=_real(cfg_text_value, "Instruction guidance"),
            cfg_image_scale=_real(cfg_image_value, "Picture guidance"),
            seed=_whole(seed_value, "Seed") or 0,
        )
        job = _submit(page, request)
        _follow(job, progress)
        result = _outcome(job)
        return result.image, result.details()

    page.model_event(
        run.click, edit,
        [source, instruction, crop_mode, edit_size, decoder, decoder_steps, seed, steps, cfg_text, cfg_image],
        [image, details], api_name="edit", preprocess=False, show_progress_on=image,
    )
    page.components.update(edit_source=source)


def inpaint_tab(page: _Page) -> None:
    r"""Inpainting: a picture, a mask painted on it with the brush, and what to paint there."""
    engine, settings = page.engine, page.settings
    with gr.Tab("Inpaint", id="inpaint"):
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(
                    label="Picture (paint over the part to repaint)", type="pil", image_mode="RGBA", format="png",
                    sources=["upload", "clipboard"], layers=False, transforms=(), eraser=gr.Eraser(),
                    brush=gr.Brush(colors=[MASK_COLOUR], color_mode="fixed"), elem_id="inpaint-source",
                )
                mask_info = gr.Markdown("Upload a picture, then paint over the part to repaint.",
                                        elem_id="inpaint-mask-info")
                prompt = gr.Textbox(label="What to paint there", placeholder="A red armchair", lines=2,
                                    elem_id="inpaint-prompt")
                with gr.Row():
                    conditioning = gr.Radio([("Instruction (the picture is the reference)", "edit"),
                                             ("Caption (describes the whole picture)", "text_to_image")],
                                            value="edit", label="The text is", elem_id="inpaint-conditioning")
                    grow = gr.Slider(0, 4, step=1, value=0, label="Grow the mask (code cells)",
                                     elem_id="inpaint-grow")
                crop_mode, edit_size = _crop_controls(settings, "inpaint")
                decoder, decoder_steps = _decoder_controls(page, "inpaint")
                seed = gr.Number(settings.seed, label="Seed", precision=0, minimum=0, elem_id="inpaint-seed")
                with gr.Accordion("Language model", open=False):
                    steps = gr.Slider(1, 64, step=1, value=settings.steps, label="Denoising steps per block")
                    cfg = gr.Slider(0.0, 10.0, step=0.5, value=settings.cfg_text_scale, label="Text guidance")
                    cfg_image = gr.Slider(0.0, 10.0, step=0.5, value=settings.cfg_image_scale,
                                          label="Picture guidance (instructions only)")
                run = gr.Button("Repaint", variant="primary", elem_id="inpaint-run")
            with gr.Column():
                image = gr.Image(label="Repainted picture", type="pil", format="png", interactive=False,
                                 elem_id="inpaint-output")
                details = gr.JSON(label="Details", open=False, elem_id="inpaint-details")

    def inpaint(editor_value, prompt_value, conditioning_value, grow_value, crop_mode_value, edit_size_value,
                decoder_value, decoder_steps_value, seed_value, steps_value, cfg_value, cfg_image_value,
                progress=gr.Progress()):
        picture, mask = _picture_and_mask(engine, editor, editor_value)
        request = InpaintRequest(
            image=picture, mask=mask, prompt=prompt_value or "", conditioning=conditioning_value,
            mask_dilation=_whole(grow_value, "Mask growth"), crop_mode=crop_mode_value,
            edit_size=_whole(edit_size_value, "Crop budget"), decoder=decoder_value,
            decoder_steps=_whole(decoder_steps_value, "Decoder steps"), steps=_whole(steps_value, "Steps per block"),
            cfg_scale=_real(cfg_value, "Text guidance"), cfg_image_scale=_real(cfg_image_value, "Picture guidance"),
            seed=_whole(seed_value, "Seed") or 0,
        )
        job = _submit(page, request)
        _follow(job, progress)
        result = _outcome(job)
        return result.image, result.details()

    def describe_mask(editor_value, grow_value, crop_mode_value, edit_size_value) -> str:
        # What the brush covers, in codes, as the visitor paints (no model call; the same mapping as the request).
        try:
            picture, mask = _picture_and_mask(engine, editor, editor_value)
            request = InpaintRequest(picture, mask, "", mask_dilation=_whole(grow_value, "Mask growth"),
                                     crop_mode=crop_mode_value, edit_size=_whole(edit_size_value, "Crop budget"))
            h, w = engine.check_edit_grid(picture.size, request.crop_mode, request.edit_size)
            cells = int(engine.repaint_cells(request).sum())
        except (gr.Error, ValueError, TypeError) as err:
            return str(getattr(err, "message", err))
        if not cells:
            return (f"The picture is {h} x {w} codes; paint over the part to repaint." if mask.getbbox() is None
                    else engine.empty_mask_message(request))
        return f"Mask: {cells} of {h * w} codes will be repainted."

    # `input` as well as `change`: the editor reports the first stroke on a picture set by another tab only as input.
    gr.on([editor.input, editor.change, grow.change, crop_mode.change, edit_size.change], describe_mask,
          [editor, grow, crop_mode, edit_size], mask_info, queue=False, preprocess=False, trigger_mode="always_last",
          api_visibility="private")
    page.model_event(
        run.click, inpaint,
        [editor, prompt, conditioning, grow, crop_mode, edit_size, decoder, decoder_steps, seed, steps, cfg,
         cfg_image],
        [image, details], api_name="inpaint", preprocess=False, show_progress_on=image,
    )
    page.components.update(inpaint_source=editor)


def _picture_and_mask(engine: AppEngine, editor: gr.ImageEditor, payload) -> tuple:
    """The editor's unprocessed value -> (the picture, its mask: white where any layer is painted)."""
    if payload is None or not (payload.get("background") or payload.get("id")):
        raise gr.Error("No picture to repaint: upload one first.", title="Check the input")
    try:
        # The editor's own reading (it also resolves values sent as blobs); a file that is not a picture fails here.
        value = editor.preprocess(EditorData.model_validate(payload))
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise gr.Error(f"That upload is not a picture this app can read: upload a PNG, JPEG, WebP, GIF or BMP image "
                       f"({type(err).__name__}).", title="Not a picture") from None
    if value is None or value.get("background") is None:
        raise gr.Error("No picture to repaint: upload one first.", title="Check the input")
    picture = engine.load_picture(value["background"])
    mask = PIL.Image.new("L", picture.size, 0)
    for layer in value.get("layers") or []:
        painted = layer.convert("RGBA").getchannel("A").point(lambda alpha: 255 if alpha else 0)
        if painted.size != picture.size:
            # A layer drawn on a canvas of another size covers the same part of the picture.
            painted = painted.resize(picture.size, PIL.Image.NEAREST)
        mask = PIL.ImageChops.lighter(mask, painted)
    return picture, mask


def _display(session: ChatSession) -> list[dict]:
    """The conversation in Gradio's chatbot format (pictures as files, then the text of the turn)."""
    shown = []
    for message in session.messages:
        parts = message["content"]
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        content = [{"path": part["image"]} if part["type"] == "image" else part["text"] for part in parts]
        shown.append({"role": message["role"], "content": content})
    return shown


def _uploaded_file(payload) -> tuple[str | None, str | None]:
    """The path and the uploader's file name of an unprocessed file component value."""
    if payload is None:
        return None, None
    if isinstance(payload, str):
        return payload, os.path.basename(payload)
    if isinstance(payload, dict):
        path = payload.get("path")
        return path, payload.get("orig_name") or (os.path.basename(path) if path else None)
    raise gr.Error(f"Unexpected picture value of type {type(payload).__name__}.", title="Check the input")


def _wire_between_tabs(page: _Page):
    parts = page.components
    # "Edit this picture" / "Repaint part of it": the generated picture becomes the source of that tab.
    for tab in ("edit", "inpaint"):
        button, source = parts.get(f"send_to_{tab}"), parts.get(f"{tab}_source")
        if button is not None and source is not None:
            button.click(
                lambda picture, tab=tab: (picture, gr.Tabs(selected=tab)), parts["generated_image"],
                [source, page.tabs], queue=False, api_visibility="private",
            )


# The tabs in page order. Adding a task: write its function here and append it.
TABS: tuple[Callable[[_Page], None], ...] = (chat_tab, create_tab, edit_tab, inpaint_tab)


def create_demo(engine: AppEngine, settings: AppSettings | None = None,
                scheduler: RequestScheduler | None = None) -> gr.Blocks:
    r"""
    Builds the page (queue configured, not launched).

    Args:
        engine: the loaded parts.
        settings: queue, batching and control defaults.
        scheduler: the worker the events submit to (default: a new one on `engine`); `demo.scheduler` holds it.
    """
    settings = settings or AppSettings()
    scheduler = scheduler or RequestScheduler(engine, settings.max_batch_size, settings.batch_window_s)
    with gr.Blocks(title="LLaDA2.0-Uni", analytics_enabled=False) as demo:
        gr.Markdown(_header(engine), elem_id="model-header")
        if engine.random_weights:
            gr.Markdown(RANDOM_WEIGHTS_NOTICE, elem_id="random-weights")
        page = _Page(engine, scheduler, settings)
        with gr.Tabs(elem_id="tasks") as page.tabs:
            for build in TABS:
                build(page)
        _wire_between_tabs(page)
    demo.queue(max_size=settings.max_queue_size, default_concurrency_limit=settings.max_batch_size)
    demo.scheduler = scheduler
    return demo


__all__ = ["CSS", "TABS", "create_demo"]
