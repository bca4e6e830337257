# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The app's model side: one loaded set of parts, the requests the page makes of it, and their validation.

Nothing here imports Gradio, so the same calls run from Python (the load check's "direct calls"), from the request
scheduler's worker thread and from the tests. The parts are loaded once, as one [`LLaDAUniTextToImagePipeline`];
the editing, inpainting and conversation pipelines are built from its components, so every task and every user
shares them.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from transformers import PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from diffusers_llada_uni import (
    LLaDAUniImageEditPipeline,
    LLaDAUniInpaintPipeline,
    LLaDAUniInterleavedPipeline,
    LLaDAUniTextToImagePipeline,
)
from diffusers_llada_uni.pipeline_llada_uni import DECODER_FOLDERS
from diffusers_llada_uni.pipeline_llada_uni_decoder import SAMPLER_DEFAULTS
from transformers_llada_uni import LLaDAUniChatHistory
from transformers_llada_uni.image_processing_llada_uni import LLaDAUniImageProcessor
from transformers_llada_uni.inpainting_llada_uni import mask_image_to_code_mask
from transformers_llada_uni.prompting_llada_uni import image_grid_size, valid_image_grid_sizes


# `progress(index in the batch, fraction done, description)`: how a running call reports on each of its requests.
ProgressFn = Callable[[int, float, str], None]

EDIT_CROP_MODES = ("edit", "edit_resize_crop")
INPAINT_CONDITIONINGS = ("edit", "text_to_image")
NO_IMAGE_TOKENIZER = "This model folder has no image tokenizer (`image_tokenizer/`): it cannot read pictures."


def default_model_dir() -> Path:
    """The tiny random-weight model that ships with the command line (what `llada-uni demo` runs)."""
    from llada_uni_cli import DEMO_MODEL_DIR

    return DEMO_MODEL_DIR


# ---------------------------------------------------------------------------------------------------- requests


@dataclass
class TextToImageRequest:
    r"""
    One picture from one prompt.

    Args:
        prompt: what to draw.
        height, width: requested pixels; the code grid is `(height // 2) // 16` x `(width // 2) // 16` and both sides
            need a size token in the vocabulary.
        thinking: let the model write its reasoning first (returned with the picture).
        decoder: `"turbo"` (distilled, 8 steps) or `"normal"` (the original 50-step decoder).
        decoder_steps: the decoder's steps (`None`: the chosen decoder's own default).
        steps: the language model's denoising steps per block.
        cfg_scale: the language model's guidance scale.
        seed: the decoder's noise.
    """

    prompt: str
    height: int = 1024
    width: int = 1024
    thinking: bool = False
    decoder: str = "turbo"
    decoder_steps: int | None = None
    steps: int = 8
    cfg_scale: float = 4.0
    seed: int = 0

    def batch_key(self) -> tuple:
        """Requests with equal keys run as one batched pipeline call (everything but the prompt and the seed)."""
        return ("text_to_image", self.height, self.width, self.thinking, self.decoder, self.decoder_steps,
                self.steps, float(self.cfg_scale))


@dataclass
class EditRequest:
    r"""
    One edit of one picture.

    Args:
        image: the source picture (loaded).
        instruction: what to change.
        crop_mode: `"edit"` (the original's crop without rescaling) or `"edit_resize_crop"` (resize, then crop).
        edit_size: the crop budget in pixels (crops hold at most `(edit_size / 32)^2` cells of 32 px); `None`: the
            image processor's own setting.
        decoder, decoder_steps, steps, seed: as in [`TextToImageRequest`].
        cfg_text_scale, cfg_image_scale: the editing guidance scales.
    """

    image: PIL.Image.Image
    instruction: str
    crop_mode: str = "edit"
    edit_size: int | None = None
    decoder: str = "turbo"
    decoder_steps: int | None = None
    steps: int = 8
    cfg_text_scale: float = 4.0
    cfg_image_scale: float = 0.0
    seed: int = 0

    def batch_key(self) -> tuple:
        # Equal picture sizes and crop settings give equal code grids: the batch is one canvas, one engine call.
        return ("edit", self.image.size, self.crop_mode, self.edit_size, self.decoder, self.decoder_steps,
                self.steps, float(self.cfg_text_scale), float(self.cfg_image_scale))


@dataclass
class InpaintRequest:
    r"""
    One picture repainted where a mask says.

    Args:
        image: the source picture (loaded).
        mask: white (any non-black level) where to repaint, of the picture's size: a PIL image (mode `"L"`, `"1"` or
            another mode, read as grey levels).
        prompt: the instruction (`conditioning="edit"`) or the caption (`"text_to_image"`).
        conditioning: `"edit"` (the source is the model's reference picture, the prompt an instruction) or
            `"text_to_image"` (the prompt describes the picture).
        mask_dilation: code cells to grow the repainted region by.
        crop_mode, edit_size: the editing crop of the picture and the mask, as in [`EditRequest`].
        decoder, decoder_steps, steps, seed: as in [`TextToImageRequest`].
        cfg_scale: the text guidance scale (the instruction's or the caption's).
        cfg_image_scale: the picture guidance scale (`conditioning="edit"` only).
    """

    image: PIL.Image.Image
    mask: PIL.Image.Image
    prompt: str
    conditioning: str = "edit"
    mask_dilation: int = 0
    crop_mode: str = "edit"
    edit_size: int | None = None
    decoder: str = "turbo"
    decoder_steps: int | None = None
    steps: int = 8
    cfg_scale: float = 4.0
    cfg_image_scale: float = 0.0
    seed: int = 0

    def batch_key(self) -> tuple:
        # As editing: equal picture sizes and crop settings give equal code grids (the masks may differ).
        return ("inpaint", self.image.size, self.conditioning, self.mask_dilation, self.crop_mode, self.edit_size,
                self.decoder, self.decoder_steps, self.steps, float(self.cfg_scale), float(self.cfg_image_scale))


@dataclass
class ChatRequest:
    r"""
    The next assistant turn of a conversation; the answer is text, and pictures wherever the model draws one.

    Args:
        messages: the whole conversation in the transformers chat format, ending with the user's turn: dicts with
            `role` (`"user"` / `"assistant"`) and `content`, a string or a list of parts `{"type": "text", "text": ...}`
            / `{"type": "image", "image": PIL image, path, or image ids}`.
        history: the previous turn's [`ChatReply.history`]: the keys / values of the finished turns are reused
            (exact) when `messages` starts with `history.messages`, so a long conversation is not encoded again.
        gen_length: the most tokens of the answer (a picture's codes count).
        steps: denoising steps per block of text.
        block_length: tokens per block.
        decoder, decoder_steps: how pictures the model draws are decoded (as in [`TextToImageRequest`]).
        seed: the sampling's and the decoder's randomness.
    """

    messages: Sequence[dict]
    history: LLaDAUniChatHistory | None = None
    gen_length: int = 512
    steps: int = 32
    block_length: int = 32
    decoder: str = "turbo"
    decoder_steps: int | None = None
    seed: int = 0

    def batch_key(self) -> None:
        # Answers stream token blocks to one user each; the engine's streamer follows a single answer.
        return None


@dataclass
class ChatReply:
    r"""
    The assistant's turn.

    Args:
        text: the text of the answer (its text segments joined).
        images: the pictures the model drew, in order.
        segments: the answer in order: `{"type": "text", "text"}` and `{"type": "image", "image": PIL image}`.
        history: pass it back as [`ChatRequest.history`] with the next turn.
    """

    text: str
    images: list[PIL.Image.Image]
    segments: list[dict]
    history: LLaDAUniChatHistory | None = None


@dataclass(frozen=True)
class ChatSession:
    r"""
    One visitor's conversation: what the page shows (`messages`, pictures as file paths) and the model's side of the
    finished turns (`history`: pictures as image ids, the reusable keys / values). Turns are added by building a new
    session, so a failed turn leaves the old one as it was.

    Args:
        messages: `{"role", "content": [{"type": "image", "image": path}, {"type": "text", "text": ...}]}` dicts.
        history: the last [`ChatReply.history`] (`None` before the first answer).
    """

    messages: tuple[dict, ...] = ()
    history: LLaDAUniChatHistory | None = None

    def with_user_turn(self, text: str, pictures: Sequence[str] = ()) -> ChatSession:
        content = [{"type": "image", "image": picture} for picture in pictures] + [{"type": "text", "text": text}]
        return ChatSession(self.messages + ({"role": "user", "content": content},), self.history)

    def with_assistant_turn(self, text: str) -> ChatSession:
        return ChatSession(self.messages + ({"role": "assistant", "content": [{"type": "text", "text": text}]},),
                           self.history)

    def request(self, **settings: Any) -> ChatRequest:
        r"""The request that answers the last user turn: the model's history, then that turn (`settings`: the other
        [`ChatRequest`] fields)."""
        if not self.messages or self.messages[-1].get("role") != "user":
            raise ValueError("The conversation must end with the user's turn.")
        earlier = list(self.history.messages) if self.history is not None else list(self.messages[:-1])
        return ChatRequest(earlier + [self.messages[-1]], history=self.history, **settings)

    def with_reply(self, reply: ChatReply, pictures: Sequence[str] = ()) -> ChatSession:
        r"""The session after `reply` (to the last user turn); `pictures` are the files the page shows for the reply's
        pictures, in order."""
        shown, files = [], iter(pictures)
        for segment in reply.segments:
            if segment["type"] == "text":
                shown.append({"type": "text", "text": segment["text"]})
            else:
                shown.append({"type": "image", "image": next(files)})
        return ChatSession(self.messages + ({"role": "assistant", "content": shown},), reply.history)


@dataclass
class ImageResult:
    r"""A generated, edited or repainted picture, its code grid and codes, the thinking text (thinking mode) and the
    `(h, w)` cells that were repainted (inpainting)."""

    image: PIL.Image.Image
    grid: tuple[int, int]
    codes: list[int]
    seed: int
    thinking: str | None = None
    repainted: torch.BoolTensor | None = None

    @property
    def codes_digest(self) -> str:
        """A short fingerprint of the codes: equal digests mean the language model produced the same picture."""
        return hashlib.sha256(",".join(map(str, self.codes)).encode()).hexdigest()[:16]

    def details(self) -> dict[str, Any]:
        h, w = self.grid
        details = {"grid": f"{h} x {w} codes", "pixels": f"{self.image.width} x {self.image.height}",
                   "seed": self.seed, "codes_sha256": self.codes_digest}
        if self.repainted is not None:
            rows, columns = self.repainted.nonzero(as_tuple=True)
            details["repainted"] = (f"{len(rows)} of {h * w} codes, rows {int(rows.min())}-{int(rows.max())}, "
                                    f"columns {int(columns.min())}-{int(columns.max())}")
        return details


# ---------------------------------------------------------------------------------------------------- messages


def _parts(message: dict) -> list[dict]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def last_user_text(messages: Sequence[dict]) -> str:
    """The text of the conversation's last user turn (its text parts joined)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(p.get("text", "") for p in _parts(message) if p.get("type") == "text").strip()
    return ""


class _AnswerStreamer(BaseStreamer):
    """Collects the answer's text ids block by block (the engine first puts the prompt) and reports the decoded text."""

    def __init__(self, tokenizer, on_text: Callable[[str], None] | None):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.ids: list[int] = []
        self._prompt_seen = False

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        if self.on_text is not None:
            self.on_text(self.text())

    def end(self):
        pass


# ---------------------------------------------------------------------------------------------------- the engine


class AppEngine:
    r"""
    The parts of one LLaDA2.0-Uni folder, loaded once, and the app's tasks on them: conversations, text-to-image,
    editing and inpainting.

    Build it with [`AppEngine.from_pretrained`] (a converted or released folder; by default the bundled tiny
    random-weight model) or from an already-loaded text-to-image pipeline. Every public method validates its requests
    and raises `ValueError` / `TypeError` with a message meant for the page; `validate` does that alone.

    Calls are not thread-safe: the app serialises them through one [`RequestScheduler`].

    Args:
        pipeline: a loaded [`LLaDAUniTextToImagePipeline`]; the editing, inpainting and conversation pipelines share
            its parts.
        name: how the page names the model.
        random_weights: the page labels every output as noise (default: the config's `llada_uni_random_weights`).
        max_image_side: the largest picture side in pixels the app accepts for text-to-image.
    """

    def __init__(self, pipeline: LLaDAUniTextToImagePipeline, name: str | None = None,
                 random_weights: bool | None = None, max_image_side: int = 2048):
        if not isinstance(pipeline, LLaDAUniTextToImagePipeline):
            raise TypeError(f"`pipeline` must be a LLaDAUniTextToImagePipeline, got {type(pipeline).__name__}.")
        self.text_to_image_pipeline = pipeline
        self.edit_pipeline = LLaDAUniImageEditPipeline(**pipeline.components)
        self.inpaint_pipeline = LLaDAUniInpaintPipeline(**pipeline.components)
        self.chat_pipeline = LLaDAUniInterleavedPipeline(**pipeline.components)
        for pipe in (self.text_to_image_pipeline, self.edit_pipeline, self.inpaint_pipeline, self.chat_pipeline):
            # A server's log is no place for per-request bars; the page shows its own progress.
            pipe.set_progress_bar_config(disable=True)
        config = pipeline.model.config
        self.name = name or getattr(config, "_name_or_path", "") or "LLaDA2.0-Uni"
        self.random_weights = (bool(getattr(config, "llada_uni_random_weights", False))
                               if random_weights is None else bool(random_weights))
        self.max_image_side = int(max_image_side)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype | str | None = None, max_image_side: int = 2048) -> AppEngine:
        r"""
        Loads a converted or released LLaDA2.0-Uni folder (both decoders where present).

        Args:
            path: the folder (default: the bundled tiny random-weight model).
            device: where the parts run.
            dtype: dtype of every part (default: the stored dtypes; `"auto"` as in transformers).
            max_image_side: see the class docstring.
        """
        folder = Path(path) if path is not None else default_model_dir()
        if not folder.is_dir():
            raise ValueError(f"Model folder {str(folder)!r} does not exist.")
        # The pipeline reads either layout (converted or released).
        pipeline = LLaDAUniTextToImagePipeline.from_pretrained(folder, dtype=dtype).to(device)
        name = "bundled tiny demo model" if path is None else folder.name
        return cls(pipeline, name=name, max_image_side=max_image_side)

    # ------------------------------------------------------------------------------------------ what it offers

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.text_to_image_pipeline.tokenizer

    @property
    def decoders(self) -> list[str]:
        """The loaded decoders, of `"turbo"` and `"normal"`."""
        pipe = self.text_to_image_pipeline
        return [kind for kind, part in (("turbo", pipe.turbo_decoder), ("normal", pipe.decoder)) if part is not None]

    @staticmethod
    def default_decoder_steps(decoder: str) -> int:
        return int(SAMPLER_DEFAULTS[decoder == "turbo"]["num_inference_steps"])

    @property
    def image_processor(self) -> LLaDAUniImageProcessor:
        return self.text_to_image_pipeline.processor.image_processor

    @property
    def can_read_pictures(self) -> bool:
        return self.text_to_image_pipeline.image_tokenizer is not None

    # ------------------------------------------------------------------------------------------ validation

    @staticmethod
    def load_picture(picture: str | os.PathLike | PIL.Image.Image | None, name: str | None = None) -> PIL.Image.Image:
        """A path or PIL image -> a loaded PIL image, or a ValueError that names the upload."""
        if picture is None:
            raise ValueError("No picture: upload one first.")
        shown = name or (os.path.basename(os.fspath(picture)) if isinstance(picture, (str, os.PathLike)) else None)
        try:
            return LLaDAUniImageProcessor.load_image(picture)
        except (ValueError, TypeError) as err:
            if shown is None:
                raise ValueError(f"That upload is not a picture: {err}") from err
            raise ValueError(
                f"{shown!r} is not a picture this app can read: upload a PNG, JPEG, WebP, GIF or BMP image."
            ) from err

    def _check_decoder(self, decoder: str, decoder_steps: int | None):
        if decoder not in DECODER_FOLDERS:
            raise ValueError(f"Unknown decoder {decoder!r}: choose 'turbo' or 'normal'.")
        if decoder not in self.decoders:
            raise ValueError(f"The {decoder} decoder is not part of this model folder: choose {self.decoders}.")
        if decoder_steps is not None and (not _is_int(decoder_steps) or decoder_steps < 1):
            raise ValueError(f"Decoder steps must be a whole number of at least 1, got {decoder_steps!r}.")

    @staticmethod
    def _check_positive(name: str, value, allow_zero: bool = False):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}.")

    def check_size(self, height: int, width: int) -> tuple[int, int]:
        """The code grid of a requested picture size, or a ValueError that says which sizes work."""
        for label, value in (("Height", height), ("Width", width)):
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{label} must be a whole number of pixels, got {value!r}.")
            if value > self.max_image_side:
                raise ValueError(f"{label} {value} px is larger than this app allows ({self.max_image_side} px).")
        h, w = image_grid_size(int(height), int(width))
        valid = valid_image_grid_sizes(self.tokenizer)
        for label, pixels, side in (("Height", height, h), ("Width", width, w)):
            if side in valid:
                continue
            below = max((v for v in valid if v < side), default=None)
            above = min((v for v in valid if v > side), default=None)
            nearest = [v for v in (below, above) if v is not None]
            suggestion = " or ".join(f"{v * 32} px" for v in nearest)
            raise ValueError(
                f"{label} {pixels} px gives {side} codes (32 px per code), and this model has no size token for "
                f"{side} codes, so it cannot draw that size. The nearest sizes it can draw: {suggestion}."
            )
        return h, w

    def edit_grid(self, size: tuple[int, int], crop_mode: str, edit_size: int | None) -> tuple[int, int]:
        """The code grid `(h, w)` a picture of `size = (width, height)` px is edited on."""
        processor = self.image_processor
        crop_w, crop_h = processor.get_processed_size(size[0], size[1], mode=crop_mode, **_crop_kwargs(edit_size))
        return crop_h // processor.patch_size, crop_w // processor.patch_size

    def check_edit_grid(self, size: tuple[int, int], crop_mode: str, edit_size: int | None) -> tuple[int, int]:
        """The editing grid of a picture, or a ValueError (the edit would write a grid without size tokens)."""
        h, w = self.edit_grid(size, crop_mode, edit_size)
        valid = valid_image_grid_sizes(self.tokenizer)
        missing = [side for side in (h, w) if side not in valid]
        if not missing:
            return h, w
        budget = edit_size or self.image_processor.edit_image_size
        larger = next((b for b in (256, 512, 1024, 2048) if b > budget
                       and all(side in valid for side in self.edit_grid(size, crop_mode, b))), None)
        hint = f" A crop budget of {larger} px works for this picture." if larger else ""
        raise ValueError(
            f"For editing, this {size[0]} x {size[1]} px picture becomes a {h} x {w} code grid (crop budget "
            f"{budget} px), and this model has no size token for {missing[0]} codes, so it cannot write the edited "
            f"picture.{hint}"
        )

    def repaint_cells(self, request: InpaintRequest) -> torch.BoolTensor:
        """The `(h, w)` code cells `request.mask` repaints (through the editing crop, as the pipeline maps it)."""
        grid = self.edit_grid(request.image.size, request.crop_mode, request.edit_size)
        return mask_image_to_code_mask(request.mask.convert("L"), self.image_processor, request.image.size,
                                       request.crop_mode, None, request.mask_dilation, grid=grid, name="mask",
                                       **_crop_kwargs(request.edit_size))

    def empty_mask_message(self, request: InpaintRequest) -> str:
        """Why `request.mask` repaints no code: nothing is painted, or only outside the part the editing crop keeps."""
        if request.mask.convert("L").getbbox() is None:
            return "The mask is empty: paint over the part of the picture to repaint."
        h, w = self.edit_grid(request.image.size, request.crop_mode, request.edit_size)
        patch, (width, height) = self.image_processor.patch_size, request.image.size
        budget = request.edit_size or self.image_processor.edit_image_size
        return (f"The painted area lies outside the part of the picture the model edits (the editing crop keeps "
                f"{w * patch} x {h * patch} px of this {width} x {height} px picture at a crop budget of {budget} "
                f"px): paint inside it, raise the crop budget, or choose 'Resize, then crop'.")

    def _check_picture_request(self, request: EditRequest | InpaintRequest, what: str, text: str, empty: str):
        """The checks editing and inpainting share: a readable picture, a text, the crop and its grid."""
        if not isinstance(request.image, PIL.Image.Image):
            raise ValueError(f"No picture to {what}: upload one first.")
        if not self.can_read_pictures:
            raise ValueError(NO_IMAGE_TOKENIZER)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(empty)
        if request.crop_mode not in EDIT_CROP_MODES:
            raise ValueError(f"Crop mode must be one of {list(EDIT_CROP_MODES)}, got {request.crop_mode!r}.")
        if request.edit_size is not None and (not _is_int(request.edit_size) or request.edit_size < 32):
            raise ValueError(f"The crop budget must be at least 32 px, got {request.edit_size!r}.")
        self.check_edit_grid(request.image.size, request.crop_mode, request.edit_size)
        self._check_decoder(request.decoder, request.decoder_steps)
        self._check_positive("Steps per block", request.steps)
        _check_seed(request.seed)

    def validate(self, request: TextToImageRequest | EditRequest | InpaintRequest | ChatRequest) -> None:
        """Raises a ValueError / TypeError, worded for the page, when `request` cannot run."""
        if isinstance(request, TextToImageRequest):
            if not isinstance(request.prompt, str) or not request.prompt.strip():
                raise ValueError("The prompt is empty: describe the picture to generate.")
            self.check_size(request.height, request.width)
            self._check_decoder(request.decoder, request.decoder_steps)
            self._check_positive("Steps per block", request.steps)
            self._check_positive("Guidance scale", request.cfg_scale, allow_zero=True)
            _check_seed(request.seed)
        elif isinstance(request, EditRequest):
            self._check_picture_request(request, "edit", request.instruction,
                                        "The instruction is empty: say how to change the picture.")
            self._check_positive("Text guidance scale", request.cfg_text_scale, allow_zero=True)
            self._check_positive("Picture guidance scale", request.cfg_image_scale, allow_zero=True)
        elif isinstance(request, InpaintRequest):
            self._check_picture_request(request, "repaint", request.prompt,
                                        "The prompt is empty: say what to paint in the masked area.")
            if request.conditioning not in INPAINT_CONDITIONINGS:
                raise ValueError(f"Conditioning must be one of {list(INPAINT_CONDITIONINGS)}, got "
                                 f"{request.conditioning!r}.")
            if not _is_int(request.mask_dilation) or request.mask_dilation < 0:
                raise ValueError(f"Mask growth must be a whole number of cells of at least 0, got "
                                 f"{request.mask_dilation!r}.")
            if not isinstance(request.mask, PIL.Image.Image):
                raise ValueError("No mask: paint over the part of the picture to repaint.")
            if request.mask.size != request.image.size:
                raise ValueError(f"The mask is {request.mask.size[0]} x {request.mask.size[1]} px but the picture is "
                                 f"{request.image.size[0]} x {request.image.size[1]} px.")
            if not bool(self.repaint_cells(request).any()):
                raise ValueError(self.empty_mask_message(request))
            self._check_positive("Text guidance scale", request.cfg_scale, allow_zero=True)
            self._check_positive("Picture guidance scale", request.cfg_image_scale, allow_zero=True)
        elif isinstance(request, ChatRequest):
            messages = request.messages
            if not isinstance(messages, (list, tuple)) or not messages or not all(isinstance(m, dict) for m in messages):
                raise ValueError("The conversation is empty: type a message.")
            if messages[-1].get("role") != "user":
                raise ValueError("The conversation must end with the user's turn.")
            if not last_user_text(messages):
                raise ValueError("The message is empty: type a question or a request.")
            pictures = any(p.get("type") == "image" for m in messages for p in _parts(m) if isinstance(p, dict))
            if pictures and not self.can_read_pictures:
                raise ValueError(NO_IMAGE_TOKENIZER)
            if request.history is not None and not isinstance(request.history, LLaDAUniChatHistory):
                raise TypeError(f"`history` must be a LLaDAUniChatHistory (a reply's `history`), got "
                                f"{type(request.history).__name__}.")
            self._check_positive("Answer length", request.gen_length)
            self._check_positive("Steps per block", request.steps)
            self._check_positive("Block length", request.block_length)
            if self.decoders:
                self._check_decoder(request.decoder, request.decoder_steps)
            _check_seed(request.seed)
        else:
            raise TypeError(f"Unknown request type {type(request).__name__}.")

    # ------------------------------------------------------------------------------------------ the tasks

    def text_to_image(self, requests: Sequence[TextToImageRequest], progress: ProgressFn | None = None
                      ) -> list[ImageResult]:
        r"""
        Generates one picture per request; requests with equal `batch_key()` run in one batched pipeline call.

        Args:
            requests: the requests (a single request is accepted too).
            progress: called with `(index, fraction, description)` per block step and decoder step.
        """
        return self._batched(requests, TextToImageRequest, self._text_to_image, progress)

    def edit(self, requests: Sequence[EditRequest], progress: ProgressFn | None = None) -> list[ImageResult]:
        r"""Edits one picture per request; requests with equal `batch_key()` run in one batched call. `progress` as
        in [`text_to_image`]."""
        return self._batched(requests, EditRequest, self._edit, progress)

    def inpaint(self, requests: Sequence[InpaintRequest], progress: ProgressFn | None = None) -> list[ImageResult]:
        r"""Repaints the masked part of one picture per request; requests with equal `batch_key()` run in one batched
        call. `progress` as in [`text_to_image`]."""
        return self._batched(requests, InpaintRequest, self._inpaint, progress)

    def chat(self, request: ChatRequest, on_text: Callable[[str], None] | None = None,
             progress: ProgressFn | None = None) -> ChatReply:
        r"""
        The assistant's turn after the conversation's last user turn: text, and pictures wherever the model draws one
        (the model's conversation API: every turn and picture of the conversation is in the prompt).

        Args:
            request: the conversation (with the previous reply's `history`, the finished turns are not encoded again).
            on_text: called with the answer's text so far after every finished block (streaming).
            progress: called as `progress(0, fraction, description)` per block of a picture the model draws.
        """
        self.validate(request)
        return self._chat(request, on_text, progress)

    def _batched(self, requests, cls, run, progress):
        requests = _as_requests(requests, cls)
        for request in requests:
            self.validate(request)
        results: list[ImageResult | None] = [None] * len(requests)
        for indices in _groups(requests).values():
            group = run([requests[i] for i in indices], _sub_progress(progress, indices))
            for index, result in zip(indices, group):
                results[index] = result
        return results

    # The `_` methods trust their (validated) requests: the scheduler validates at submission and calls these.

    def _text_to_image(self, requests: list[TextToImageRequest], progress: ProgressFn | None) -> list[ImageResult]:
        first = requests[0]
        pipe = self.text_to_image_pipeline
        h, w = image_grid_size(first.height, first.width)
        gen_length = h * w
        if progress is not None and first.thinking:
            for index in range(len(requests)):
                progress(index, 0.0, "Thinking: writing the reasoning")
        out = pipe(
            [r.prompt for r in requests],
            height=first.height,
            width=first.width,
            thinking=first.thinking,
            steps=first.steps,
            cfg_scale=first.cfg_scale,
            decoder=first.decoder,
            num_inference_steps=first.decoder_steps,
            generator=[_generator(r.seed) for r in requests],
            callback_on_step_end=self._step_callback(progress, len(requests), gen_length, first.decoder,
                                                     first.decoder_steps),
        )
        return [
            ImageResult(image=image, grid=tuple(grid), codes=codes.tolist(), seed=r.seed,
                        thinking=(thinking if r.thinking else None))
            for r, image, grid, codes, thinking in zip(requests, out.images, out.grid_sizes, out.image_tokens,
                                                       out.thinking or [None] * len(requests))
        ]

    def _edit(self, requests: list[EditRequest], progress: ProgressFn | None) -> list[ImageResult]:
        first = requests[0]
        out = self.edit_pipeline(
            [r.image for r in requests],
            [r.instruction for r in requests],
            steps=first.steps,
            cfg_text_scale=first.cfg_text_scale,
            cfg_image_scale=first.cfg_image_scale,
            crop_mode=first.crop_mode,
            image_kwargs=_crop_kwargs(first.edit_size),
            decoder=first.decoder,
            num_inference_steps=first.decoder_steps,
            generator=[_generator(r.seed) for r in requests],
            callback_on_step_end=self._step_callback(progress, len(requests), None, first.decoder,
                                                     first.decoder_steps),
        )
        return [
            ImageResult(image=image, grid=tuple(grid), codes=codes.tolist(), seed=r.seed)
            for r, image, grid, codes in zip(requests, out.images, out.grid_sizes, out.image_tokens)
        ]

    def _inpaint(self, requests: list[InpaintRequest], progress: ProgressFn | None) -> list[ImageResult]:
        first = requests[0]
        edit = first.conditioning == "edit"
        guidance = (dict(cfg_text_scale=first.cfg_scale, cfg_image_scale=first.cfg_image_scale) if edit
                    else dict(cfg_scale=first.cfg_scale))
        # The masks are mapped onto the code grids once (dilation included); the pipeline takes code masks as given.
        cells = [self.repaint_cells(r) for r in requests]
        callback = self._step_callback(progress, len(requests), None, first.decoder, first.decoder_steps,
                                       masked_counts=[int(c.sum()) for c in cells])
        out = self.inpaint_pipeline(
            [r.image for r in requests],
            mask_image=cells,
            prompt=[r.prompt for r in requests],
            conditioning=first.conditioning,
            steps=first.steps,
            crop_mode=first.crop_mode,
            image_kwargs=_crop_kwargs(first.edit_size),
            decoder=first.decoder,
            num_inference_steps=first.decoder_steps,
            generator=[_generator(r.seed) for r in requests],
            callback_on_step_end=callback,
            decoder_kwargs={"callback_on_step_end": callback} if callback is not None else None,
            **guidance,
        )
        return [
            ImageResult(image=image, grid=tuple(grid), codes=codes.tolist(), seed=r.seed, repainted=cells.cpu())
            for r, image, grid, codes, cells in zip(requests, out.images, out.grid_sizes, out.image_tokens,
                                                     out.repaint_masks)
        ]

    def _chat(self, request: ChatRequest, on_text: Callable[[str], None] | None,
              progress: ProgressFn | None = None) -> ChatReply:
        streamer = _AnswerStreamer(self.tokenizer, on_text)

        def on_step(info) -> None:
            if info.kind == "image":
                progress(0, info.block / info.num_blocks,
                         f"Drawing a picture: block {info.block + 1} / {info.num_blocks}")

        out = self.chat_pipeline(
            [dict(message) for message in request.messages],
            history=request.history,
            max_new_tokens=request.gen_length,
            steps=request.steps,
            block_length=request.block_length,
            decoder=request.decoder if self.decoders else None,
            num_inference_steps=request.decoder_steps,
            output_type="pil" if self.decoders else "codes",
            streamer=streamer,
            callback=on_step if progress is not None else None,
            generator=_generator(request.seed),
        )
        segments = [
            {"type": "text", "text": segment["text"]} if segment["type"] == "text"
            else {"type": "image", "image": segment["image"]} if segment["image"] is not None
            # A folder without a decoder still says where the model drew.
            else {"type": "text", "text": f"[a {segment['h']} x {segment['w']} code picture; this model folder has "
                                          f"no image decoder to show it]"}
            for segment in out.segments
        ]
        images = [segment["image"] for segment in segments if segment["type"] == "image"]
        return ChatReply(text=out.text, images=images, segments=segments, history=out.history)

    def _step_callback(self, progress: ProgressFn | None, count: int, gen_length: int | None, decoder: str,
                       decoder_steps: int | None, masked_counts: Sequence[int] | None = None):
        """The pipelines' `callback_on_step_end` -> per-request progress: during the language model, the share of
        committed codes (`callback_kwargs["image_tokens"]`: -1 where masked; inpainting's canvas holds the mask id
        there, of `masked_counts` cells to repaint per request); during the decoder, its steps."""
        if progress is None:
            return None
        total_steps = decoder_steps or self.default_decoder_steps(decoder)
        mask_id = self.text_to_image_pipeline.processor.special_token_ids.mask_token_id if masked_counts else None

        def on_step_end(pipe, step, block_or_timestep, callback_kwargs):
            codes = callback_kwargs.get("image_tokens")
            if codes is not None and masked_counts:
                left = (codes == mask_id).sum(dim=1).tolist()
                for index, (cells, waiting) in enumerate(zip(masked_counts, left)):
                    progress(index, 1 - waiting / cells, f"Block {block_or_timestep + 1}: {cells - waiting} / "
                                                         f"{cells} codes repainted")
                return {}
            if codes is not None:
                total = gen_length or codes.shape[1]
                filled = (codes[:, :total] >= 0).sum(dim=1).tolist()
                for index, done in enumerate(filled):
                    progress(index, done / total, f"Block {block_or_timestep + 1}: {done} / {total} codes")
                return {}
            for index in range(count):
                progress(index, (step + 1) / total_steps, f"Decoding: step {step + 1} / {total_steps}")
            return {}

        return on_step_end


# ---------------------------------------------------------------------------------------------------- helpers


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _crop_kwargs(edit_size: int | None) -> dict:
    """The image processor's override of the editing crop budget (none: its own setting)."""
    return {"edit_image_size": edit_size} if edit_size is not None else {}


def _check_seed(seed):
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"The seed must be a whole number of at least 0, got {seed!r}.")


def _generator(seed: int) -> torch.Generator:
    # CPU generators give the same noise on every device (diffusers' reproducibility advice).
    return torch.Generator(device="cpu").manual_seed(int(seed))


def _as_requests(requests, cls) -> list:
    items = [requests] if isinstance(requests, cls) else list(requests)
    if not items:
        raise ValueError("No requests given.")
    for item in items:
        if not isinstance(item, cls):
            raise TypeError(f"Expected {cls.__name__} requests, got {type(item).__name__}.")
    return items


def _groups(requests) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.batch_key(), []).append(index)
    return groups


def _sub_progress(progress: ProgressFn | None, indices: list[int]) -> ProgressFn | None:
    if progress is None:
        return None
    return lambda index, fraction, description: progress(indices[index], fraction, description)


__all__ = [
    "AppEngine",
    "ChatReply",
    "ChatRequest",
    "ChatSession",
    "EditRequest",
    "ImageResult",
    "InpaintRequest",
    "TextToImageRequest",
    "last_user_text",
]
