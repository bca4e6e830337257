# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The app's model side: one loaded set of parts, the requests the page makes of it, and their validation.

Nothing here imports Gradio, so the same calls run from Python (the load check's "direct calls"), from the request
scheduler's worker thread and from the tests. The parts are loaded once, as one [`LLaDAUniTextToImagePipeline`];
the editing and understanding pipelines are built from its components, so every task and every user shares them.
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
    LLaDAUniTextToImagePipeline,
    LLaDAUniUnderstandingPipeline,
)
from diffusers_llada_uni.pipeline_llada_uni import DECODER_FOLDERS
from diffusers_llada_uni.pipeline_llada_uni_decoder import SAMPLER_DEFAULTS
from transformers_llada_uni.prompting_llada_uni import image_grid_size, valid_image_grid_sizes


# `progress(index in the batch, fraction done, description)`: how a running call reports on each of its requests.
ProgressFn = Callable[[int, float, str], None]

EDIT_CROP_MODES = ("edit", "edit_resize_crop")
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
class ChatRequest:
    r"""
    The next assistant turn of a conversation.

    Args:
        messages: the conversation so far in the transformers chat format, ending with the user's turn: dicts with
            `role` (`"user"` / `"assistant"`) and `content`, a string or a list of parts `{"type": "text", "text": ...}`
            / `{"type": "image", "image": PIL image or path}`.
        gen_length: the most tokens of the answer.
        steps: denoising steps per block.
        block_length: tokens per block.
    """

    messages: Sequence[dict]
    gen_length: int = 512
    steps: int = 32
    block_length: int = 32

    def batch_key(self) -> None:
        # Answers stream token blocks to one user each; the engine's streamer follows a single answer.
        return None


@dataclass(frozen=True)
class ChatSession:
    r"""
    One visitor's conversation, in the transformers chat format (what [`ChatRequest`] takes). Turns are added by
    building a new session, so a failed turn leaves the old one as it was.

    Args:
        messages: `{"role", "content": [{"type": "image", "image": path}, {"type": "text", "text": ...}]}` dicts.
    """

    messages: tuple[dict, ...] = ()

    def with_user_turn(self, text: str, pictures: Sequence[str] = ()) -> ChatSession:
        content = [{"type": "image", "image": picture} for picture in pictures] + [{"type": "text", "text": text}]
        return ChatSession(self.messages + ({"role": "user", "content": content},))

    def with_assistant_turn(self, text: str) -> ChatSession:
        return ChatSession(self.messages + ({"role": "assistant", "content": [{"type": "text", "text": text}]},))


@dataclass
class ImageResult:
    r"""A generated or edited picture, its code grid and codes, and the thinking text (thinking mode)."""

    image: PIL.Image.Image
    grid: tuple[int, int]
    codes: list[int]
    seed: int
    thinking: str | None = None

    @property
    def codes_digest(self) -> str:
        """A short fingerprint of the codes: equal digests mean the language model produced the same picture."""
        return hashlib.sha256(",".join(map(str, self.codes)).encode()).hexdigest()[:16]

    def details(self) -> dict[str, Any]:
        h, w = self.grid
        return {"grid": f"{h} x {w} codes", "pixels": f"{self.image.width} x {self.image.height}", "seed": self.seed,
                "codes_sha256": self.codes_digest}


# ---------------------------------------------------------------------------------------------------- messages


def latest_user_turn(messages: Sequence[dict]) -> tuple[str, Any]:
    """The question of the last user turn and the latest picture anywhere in the conversation (single-turn
    understanding answers that question about that picture)."""
    question, picture = None, None
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if question is None:
            question = " ".join(p.get("text", "") for p in parts if p.get("type") == "text").strip()
        if picture is None:
            images = [p.get("image") for p in parts if p.get("type") == "image"]
            if images:
                picture = images[-1]
        if picture is not None:
            break
    return question or "", picture


class _AnswerStreamer(BaseStreamer):
    """Collects the answer's ids block by block (the engine first puts the prompt) and reports the decoded text."""

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
    The parts of one LLaDA2.0-Uni folder, loaded once, and the app's three tasks on them.

    Build it with [`AppEngine.from_pretrained`] (a converted or released folder; by default the bundled tiny
    random-weight model) or from an already-loaded text-to-image pipeline. Every public method validates its requests
    and raises `ValueError` / `TypeError` with a message meant for the page; `validate` does that alone.

    Calls are not thread-safe: the app serialises them through one [`RequestScheduler`].

    Args:
        pipeline: a loaded [`LLaDAUniTextToImagePipeline`]; the editing and understanding pipelines share its parts.
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
        self.understanding_pipeline = LLaDAUniUnderstandingPipeline(**pipeline.components)
        for pipe in (self.text_to_image_pipeline, self.edit_pipeline, self.understanding_pipeline):
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
    def can_read_pictures(self) -> bool:
        return self.text_to_image_pipeline.image_tokenizer is not None

    # ------------------------------------------------------------------------------------------ validation

    @staticmethod
    def load_picture(picture: str | os.PathLike | PIL.Image.Image | None, name: str | None = None) -> PIL.Image.Image:
        """A path or PIL image -> a loaded PIL image, or a ValueError that names the upload."""
        from transformers_llada_uni.image_processing_llada_uni import LLaDAUniImageProcessor

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
        processor = self.text_to_image_pipeline.processor.image_processor
        overrides = {"edit_image_size": edit_size} if edit_size is not None else {}
        crop_w, crop_h = processor.get_processed_size(size[0], size[1], mode=crop_mode, **overrides)
        return crop_h // processor.patch_size, crop_w // processor.patch_size

    def check_edit_grid(self, size: tuple[int, int], crop_mode: str, edit_size: int | None) -> tuple[int, int]:
        """The editing grid of a picture, or a ValueError (the edit would write a grid without size tokens)."""
        h, w = self.edit_grid(size, crop_mode, edit_size)
        valid = valid_image_grid_sizes(self.tokenizer)
        missing = [side for side in (h, w) if side not in valid]
        if not missing:
            return h, w
        budget = edit_size or self.text_to_image_pipeline.processor.image_processor.edit_image_size
        larger = next((b for b in (256, 512, 1024, 2048) if b > budget
                       and all(side in valid for side in self.edit_grid(size, crop_mode, b))), None)
        hint = f" A crop budget of {larger} px works for this picture." if larger else ""
        raise ValueError(
            f"For editing, this {size[0]} x {size[1]} px picture becomes a {h} x {w} code grid (crop budget "
            f"{budget} px), and this model has no size token for {missing[0]} codes, so it cannot write the edited "
            f"picture.{hint}"
        )

    def validate(self, request: TextToImageRequest | EditRequest | ChatRequest) -> None:
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
            if not isinstance(request.image, PIL.Image.Image):
                raise ValueError("No picture to edit: upload one first.")
            if not self.can_read_pictures:
                raise ValueError(NO_IMAGE_TOKENIZER)
            if not isinstance(request.instruction, str) or not request.instruction.strip():
                raise ValueError("The instruction is empty: say how to change the picture.")
            if request.crop_mode not in EDIT_CROP_MODES:
                raise ValueError(f"Crop mode must be one of {list(EDIT_CROP_MODES)}, got {request.crop_mode!r}.")
            if request.edit_size is not None and (not _is_int(request.edit_size) or request.edit_size < 32):
                raise ValueError(f"The crop budget must be at least 32 px, got {request.edit_size!r}.")
            self.check_edit_grid(request.image.size, request.crop_mode, request.edit_size)
            self._check_decoder(request.decoder, request.decoder_steps)
            self._check_positive("Steps per block", request.steps)
            self._check_positive("Text guidance scale", request.cfg_text_scale, allow_zero=True)
            self._check_positive("Picture guidance scale", request.cfg_image_scale, allow_zero=True)
            _check_seed(request.seed)
        elif isinstance(request, ChatRequest):
            if not isinstance(request.messages, (list, tuple)) or not request.messages:
                raise ValueError("The conversation is empty: ask a question.")
            if request.messages[-1].get("role") != "user":
                raise ValueError("The conversation must end with the user's turn.")
            question, picture = latest_user_turn(request.messages)
            if not question:
                raise ValueError("The question is empty: type what you want to know about the picture.")
            if picture is None:
                raise ValueError("No picture in this conversation: upload one with your question.")
            if not self.can_read_pictures:
                raise ValueError(NO_IMAGE_TOKENIZER)
            self._check_positive("Answer length", request.gen_length)
            self._check_positive("Steps per block", request.steps)
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
        requests = _as_requests(requests, TextToImageRequest)
        for request in requests:
            self.validate(request)
        results: list[ImageResult | None] = [None] * len(requests)
        for indices in _groups(requests).values():
            group = self._text_to_image([requests[i] for i in indices], _sub_progress(progress, indices))
            for index, result in zip(indices, group):
                results[index] = result
        return results

    def edit(self, requests: Sequence[EditRequest], progress: ProgressFn | None = None) -> list[ImageResult]:
        r"""Edits one picture per request; requests with equal `batch_key()` run in one batched call. `progress` as
        in [`text_to_image`]."""
        requests = _as_requests(requests, EditRequest)
        for request in requests:
            self.validate(request)
        results: list[ImageResult | None] = [None] * len(requests)
        for indices in _groups(requests).values():
            group = self._edit([requests[i] for i in indices], _sub_progress(progress, indices))
            for index, result in zip(indices, group):
                results[index] = result
        return results

    def chat(self, request: ChatRequest, on_text: Callable[[str], None] | None = None) -> str:
        r"""
        The assistant's answer to the conversation's last user turn.

        For now this is single-turn understanding: the last question is asked about the latest picture of the
        conversation, without the earlier turns (the model's conversation API will take the whole history).

        Args:
            request: the conversation.
            on_text: called with the answer so far after every finished block (streaming).
        """
        self.validate(request)
        return self._chat(request, on_text)

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
        image_kwargs = {"edit_image_size": first.edit_size} if first.edit_size is not None else None
        out = self.edit_pipeline(
            [r.image for r in requests],
            [r.instruction for r in requests],
            steps=first.steps,
            cfg_text_scale=first.cfg_text_scale,
            cfg_image_scale=first.cfg_image_scale,
            crop_mode=first.crop_mode,
            image_kwargs=image_kwargs,
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

    def _chat(self, request: ChatRequest, on_text: Callable[[str], None] | None) -> str:
        question, picture = latest_user_turn(request.messages)
        picture = self.load_picture(picture)
        streamer = _AnswerStreamer(self.tokenizer, on_text)
        self.understanding_pipeline(
            picture,
            question,
            steps=request.steps,
            block_length=request.block_length,
            gen_length=request.gen_length,
            generation_kwargs={"streamer": streamer},
        )
        return streamer.text()

    def _step_callback(self, progress: ProgressFn | None, count: int, gen_length: int | None, decoder: str,
                       decoder_steps: int | None):
        """The pipelines' `callback_on_step_end` -> per-request progress: during the language model, the share of
        committed codes (`callback_kwargs["image_tokens"]`, -1 where masked); during the decoder, its steps."""
        if progress is None:
            return None
        total_steps = decoder_steps or self.default_decoder_steps(decoder)

        def on_step_end(pipe, step, block_or_timestep, callback_kwargs):
            codes = callback_kwargs.get("image_tokens")
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
    "ChatRequest",
    "ChatSession",
    "EditRequest",
    "ImageResult",
    "TextToImageRequest",
    "latest_user_turn",
]
