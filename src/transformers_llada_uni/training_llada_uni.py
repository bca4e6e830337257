# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Fine-tuning LLaDA2.0-Uni: the masked-diffusion objective, its data collator, data formats, PEFT and QLoRA helpers.

The objective follows the public LLaDA2.0 recipe (dFactory):

- no label shift: the logits at position i predict token i, and the loss is taken only where the input was masked;
- one noise level ``t ~ U[lo, hi]`` per sequence (default 0.3..0.8; optionally one per block), every maskable
  token becomes ``<|mask|>`` independently with probability ``t``; maskable = the response (text: the answer and the
  EOS padding after it, so the model learns to stop; images: the target image codes), the prompt is never masked;
- the doubled sequence ``[x_t | x_0]`` (both halves at positions ``0..L-1``, blocks of ``block_length`` counted from
  position 0) under the Block-Diffusion (BD3-LM) mask: a noisy token sees its own noisy block and the clean copies of
  earlier blocks, a clean token sees the clean tokens of its own and earlier blocks; the loss is on the noisy half;
- per sequence, the summed cross-entropy over masked tokens divided by their number, then the batch mean.

The one-block form (``form="one_block"``) trains one block per pass: ``x_0[:start] + x_t[start:end]`` under the
block-causal mask, which gives exactly the logits that the doubled form gives for that block.

Random draws (all from the collator's ``torch.Generator``, in this order, so a seeded run is reproducible):

1. condition dropout (only for probabilities > 0): ``torch.rand(batch, 2)``; column 0 drops the text-to-image caption
   or the editing instruction, column 1 drops the editing source image;
2. noise levels: ``torch.rand(batch)`` (``torch.rand(batch, num_blocks)`` with ``per_block_noise``), mapped to
   ``lo + (hi - lo) * u``;
3. token noise: ``torch.rand(batch, length)``; a maskable token is masked where this is below its noise level. A
   sequence with maskable tokens but none masked gets its maskable token with the smallest draw masked (no extra draw);
4. one-block form only: ``torch.rand(batch)`` picks, uniformly, one of the blocks that hold a masked token.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .prompting_llada_uni import (
    UNCONDITIONAL_TEXT,
    build_editing_prompts,
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    encode_text,
    get_special_token_ids,
)


# --------------------------------------------------------------------------------------------------------------------
# Special tokens
# --------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LLaDAUniSpecialTokens:
    """Every id the objective needs, read from the tokenizer and the model config (never hard-coded).

    Use [`LLaDAUniSpecialTokens.from_tokenizer`] to build it.
    """

    mask_token_id: int
    eos_token_id: int
    pad_token_id: int
    image_token_offset: int
    image_codebook_size: int
    image_start_token_id: int
    image_end_token_id: int
    boi_token_id: int

    @classmethod
    def from_tokenizer(cls, tokenizer, config) -> LLaDAUniSpecialTokens:
        """Resolves the ids the way generation does ([`prompting_llada_uni.get_special_token_ids`]: config first, then
        the tokenizer; the released config stores no mask id) and adds the padding id (config, tokenizer, else EOS)."""
        ids = get_special_token_ids(tokenizer, config)
        pad_id = getattr(config, "pad_token_id", None)
        if pad_id is None:
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids.eos_token_id
        return cls(
            mask_token_id=ids.mask_token_id,
            eos_token_id=ids.eos_token_id,
            pad_token_id=int(pad_id),
            image_token_offset=ids.image_token_offset,
            image_codebook_size=ids.image_codebook_size,
            image_start_token_id=ids.image_token_id,
            image_end_token_id=ids.end_image_token_id,
            boi_token_id=ids.boi_token_id,
        )


# --------------------------------------------------------------------------------------------------------------------
# Encoded examples and data formats
# --------------------------------------------------------------------------------------------------------------------

TASK_TEXT = "text"
TASK_TEXT_TO_IMAGE = "text_to_image"
TASK_IMAGE_EDITING = "image_editing"


@dataclass
class MaskedDiffusionExample:
    """One tokenised training record.

    Args:
        prompt_ids: the conditioning tokens (never masked).
        response_ids: the target tokens (maskable).
        task: `"text"`, `"text_to_image"` or `"image_editing"`.
        pad_with_eos: text targets are padded with EOS up to the batch length and the padding is part of the target
            (the model learns to stop); image targets have a fixed length and are padded with ignored tokens.
        dropout_prompts: alternative prompts the collator may swap in (condition dropout): `"no_text"` (caption or
            instruction replaced by `<uncondition>`) and `"no_image"` (editing source image replaced by a bare
            `<|image|>`).
    """

    prompt_ids: list[int]
    response_ids: list[int]
    task: str = TASK_TEXT
    pad_with_eos: bool = True
    dropout_prompts: dict[str, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids) + (1 if self.pad_with_eos else 0)


def _check_codes(codes, grid, special: LLaDAUniSpecialTokens, what: str) -> tuple[list[int], tuple[int, int]]:
    if isinstance(codes, torch.Tensor):
        if grid is None and codes.ndim == 2:
            grid = tuple(codes.shape)
        codes = codes.reshape(-1).tolist()
    elif codes and isinstance(codes[0], (list, tuple)):
        if grid is None:
            grid = (len(codes), len(codes[0]))
        codes = [c for row in codes for c in row]
    if grid is None:
        raise ValueError(f"{what}: flat image codes need a `grid` [h, w].")
    if len(grid) != 2 or any(not isinstance(g, int) or g <= 0 for g in grid):
        raise ValueError(f"{what}: `grid` must be two positive integers [h, w], got {grid!r}.")
    h, w = grid
    codes = [int(c) for c in codes]
    if len(codes) != h * w:
        raise ValueError(f"{what}: {len(codes)} image codes do not fill the grid {h} x {w} ({h * w} codes).")
    bad = [c for c in codes if not 0 <= c < special.image_codebook_size]
    if bad:
        raise ValueError(
            f"{what}: image code {bad[0]} is outside the codebook [0, {special.image_codebook_size})."
        )
    return codes, (h, w)


def _load_image(image, what: str):
    """Opens a path (or passes a PIL image through); an unreadable file raises a ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                opened.load()
                return opened.copy()
        except (FileNotFoundError, IsADirectoryError, UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{what}: cannot read the image {str(image)!r} ({type(error).__name__}: {error}).") from error
    raise TypeError(f"{what}: an image must be a path or a PIL image, got {type(image).__name__}.")


class LLaDAUniTrainingDataEncoder:
    """Turns training records into [`MaskedDiffusionExample`]s, with the same prompts that inference uses.

    Args:
        tokenizer: the model's tokenizer (its chat template renders the text SFT prompts).
        config: the model config (image offset and codebook size, mask and EOS ids).
        image_tokenizer (*optional*): needed only for records that give pictures instead of precomputed codes: a
            [`LLaDAUniImageVQModel`] (used through `processor.encode_images`), or any callable
            `image_tokenizer(image, task) -> (codes, (h, w))` with `task` in `"text_to_image"`, `"image_editing"`.
        processor (*optional*): the [`LLaDAUniProcessor`] that prepares pictures for the image tokenizer model
            (default: one built around `tokenizer` with the default image processor).
        text_to_image_mode: image-processor geometry for text-to-image targets. Default `"edit_resize_crop"`: the
            whole picture resized to the editing crop size, so each code covers 32 x 32 px of the picture the decoder
            renders (the released recipe is unpublished; this mirrors inference, where a grid of `h x w` codes is
            drawn at `32 h x 32 w` px).
        editing_mode: geometry for editing pairs. Default `"edit"`, the original editing crop (reference behaviour).
        max_length (*optional*): records whose prompt plus target (plus one EOS for text) is longer raise a
            ValueError.
    """

    def __init__(
        self,
        tokenizer,
        config,
        image_tokenizer=None,
        processor=None,
        text_to_image_mode: str = "edit_resize_crop",
        editing_mode: str = "edit",
        max_length: int | None = None,
    ):
        if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
            raise ValueError(f"`max_length` must be a positive integer or None, got {max_length!r}.")
        self.tokenizer = tokenizer
        self.config = config
        self.special = LLaDAUniSpecialTokens.from_tokenizer(tokenizer, config)
        self.image_tokenizer = image_tokenizer
        self.processor = processor
        self.modes = {TASK_TEXT_TO_IMAGE: text_to_image_mode, TASK_IMAGE_EDITING: editing_mode}
        self.max_length = max_length

    # -- text ----------------------------------------------------------------------------------------------------------
    def encode_messages(self, messages: Sequence[Mapping[str, Any]], what: str = "record") -> MaskedDiffusionExample:
        """Chat SFT: the last message must come from the assistant and is the target; everything before it, rendered
        by the chat template with the generation prompt, is the prompt."""
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError(f"{what}: `messages` must be a non-empty list of {{'role', 'content'}} dicts.")
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
                raise ValueError(f"{what}: message {i} must be a dict with 'role' and 'content', got {message!r}.")
        last = messages[-1]
        if last["role"] != "assistant" or not isinstance(last["content"], str) or not last["content"]:
            raise ValueError(
                f"{what} has no response: the last message must be a non-empty 'assistant' message, got role "
                f"{last['role']!r}."
            )
        if len(messages) < 2:
            raise ValueError(f"{what}: an assistant answer needs at least one message before it.")
        prompt_text = self.tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
        full_text = self.tokenizer.apply_chat_template(list(messages), tokenize=False)
        if not full_text.startswith(prompt_text):
            raise ValueError(f"{what}: the chat template does not render the prompt as a prefix of the full chat.")
        example = MaskedDiffusionExample(
            prompt_ids=encode_text(self.tokenizer, prompt_text),
            response_ids=encode_text(self.tokenizer, full_text[len(prompt_text) :]),
            task=TASK_TEXT,
            pad_with_eos=True,
        )
        return self._check_length(example, what)

    def encode_prompt_response(self, prompt: str, response: str, what: str = "record") -> MaskedDiffusionExample:
        """Text SFT from a user prompt and an answer (rendered as a two-message chat)."""
        if not isinstance(response, str) or not response:
            raise ValueError(f"{what} has no response: `response` must be a non-empty string.")
        return self.encode_messages(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], what
        )

    # -- images --------------------------------------------------------------------------------------------------------
    def _codes(self, image, codes, grid, task: str, what: str) -> tuple[list[int], tuple[int, int]]:
        if codes is not None:
            return _check_codes(codes, grid, self.special, what)
        if image is None:
            raise ValueError(f"{what}: give either an image or precomputed image codes (+ grid).")
        if self.image_tokenizer is None:
            raise ValueError(
                f"{what} gives an image but no image tokenizer was passed; pass `image_tokenizer=` or precomputed codes."
            )
        pil = _load_image(image, what)
        if hasattr(self.image_tokenizer, "encode"):
            if self.processor is None:
                from .processing_llada_uni import LLaDAUniProcessor

                self.processor = LLaDAUniProcessor(
                    tokenizer=self.tokenizer,
                    image_token_offset=self.special.image_token_offset,
                    image_codebook_size=self.special.image_codebook_size,
                )
            with torch.no_grad():
                encoded = self.processor.encode_images(pil, self.image_tokenizer, mode=self.modes[task])
            offset = self.special.image_token_offset
            out_codes = [i - offset for i in encoded["image_token_ids"]]
            out_grid = (encoded["h"], encoded["w"])
        elif callable(self.image_tokenizer):
            out_codes, out_grid = self.image_tokenizer(pil, task)
        else:
            raise TypeError(
                "`image_tokenizer` must be a LLaDAUniImageVQModel or a callable (image, task) -> (codes, (h, w)),"
                f" got {type(self.image_tokenizer).__name__}."
            )
        return _check_codes(out_codes, tuple(int(g) for g in out_grid), self.special, what)

    def encode_text_to_image(
        self, prompt: str, image=None, image_codes=None, grid=None, what: str = "record"
    ) -> MaskedDiffusionExample:
        """Text-to-image: the generation prompt (system + caption + assistant + image header) is the prompt and the
        image codes (with the offset) are the target. The `<uncondition>` prompt is kept for condition dropout."""
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"{what}: `prompt` must be a non-empty string.")
        codes, (h, w) = self._codes(image, image_codes, grid, TASK_TEXT_TO_IMAGE, what)
        prompt_ids = build_text_to_image_prompt(self.tokenizer, prompt, h, w)
        uncond_ids = build_text_to_image_unconditional_prompt(self.tokenizer, h, w)
        example = MaskedDiffusionExample(
            prompt_ids=prompt_ids,
            response_ids=[c + self.special.image_token_offset for c in codes],
            task=TASK_TEXT_TO_IMAGE,
            pad_with_eos=False,
            dropout_prompts={"no_text": uncond_ids},
        )
        return self._check_length(example, what)

    def encode_image_editing(
        self,
        instruction: str,
        source_image=None,
        edited_image=None,
        source_codes=None,
        source_grid=None,
        edited_codes=None,
        edited_grid=None,
        what: str = "record",
    ) -> MaskedDiffusionExample:
        """Editing: system + source image block + instruction + assistant + header is the prompt, the edited image's
        codes are the target (same grid as the source, as at inference)."""
        if not isinstance(instruction, str) or not instruction:
            raise ValueError(f"{what}: `instruction` must be a non-empty string.")
        src, (h, w) = self._codes(source_image, source_codes, source_grid, TASK_IMAGE_EDITING, what + " (source)")
        tgt, grid = self._codes(edited_image, edited_codes, edited_grid, TASK_IMAGE_EDITING, what + " (edited)")
        if grid != (h, w):
            raise ValueError(f"{what}: the edited image grid {grid} differs from the source grid {(h, w)}.")
        offset = self.special.image_token_offset
        full, no_text, no_image = build_editing_prompts(self.tokenizer, [c + offset for c in src], h, w, instruction)
        example = MaskedDiffusionExample(
            prompt_ids=full,
            response_ids=[c + offset for c in tgt],
            task=TASK_IMAGE_EDITING,
            pad_with_eos=False,
            dropout_prompts={"no_text": no_text, "no_image": no_image},
        )
        return self._check_length(example, what)

    # -- records -------------------------------------------------------------------------------------------------------
    def encode(self, record: Mapping[str, Any], what: str = "record", base_dir: str | None = None) -> MaskedDiffusionExample:
        """Encodes one record of the JSONL format (see [`load_jsonl_records`])."""
        if not isinstance(record, Mapping):
            raise TypeError(f"{what} must be a JSON object, got {type(record).__name__}.")

        def path(value):
            if isinstance(value, str) and base_dir is not None and not os.path.isabs(value):
                return os.path.join(base_dir, value)
            return value

        if "messages" in record:
            return self.encode_messages(record["messages"], what)
        if "instruction" in record:
            return self.encode_image_editing(
                record["instruction"],
                source_image=path(record.get("source_image")),
                edited_image=path(record.get("edited_image")),
                source_codes=record.get("source_codes"),
                source_grid=_grid(record.get("source_grid")),
                edited_codes=record.get("edited_codes"),
                edited_grid=_grid(record.get("edited_grid")),
                what=what,
            )
        if "image" in record or "image_codes" in record:
            return self.encode_text_to_image(
                record.get("prompt"),
                image=path(record.get("image")),
                image_codes=record.get("image_codes"),
                grid=_grid(record.get("grid")),
                what=what,
            )
        if "prompt" in record:
            if "response" not in record:
                raise ValueError(f"{what} has no response: a text record needs 'response' (or 'messages').")
            return self.encode_prompt_response(record["prompt"], record["response"], what)
        raise ValueError(
            f"{what} has none of the keys 'messages', 'prompt'+'response', 'prompt'+'image'/'image_codes', "
            f"'instruction'+images: got keys {sorted(record)}."
        )

    def _check_length(self, example: MaskedDiffusionExample, what: str) -> MaskedDiffusionExample:
        if not example.response_ids:
            raise ValueError(f"{what} has no response: the target is empty.")
        longest = max([len(example.prompt_ids)] + [len(p) for p in example.dropout_prompts.values()])
        needed = longest + len(example.response_ids) + (1 if example.pad_with_eos else 0)
        if self.max_length is not None and needed > self.max_length:
            raise ValueError(
                f"{what} is {needed} tokens long (prompt {longest} + target {len(example.response_ids)}"
                + (" + EOS" if example.pad_with_eos else "")
                + f"), longer than max_length={self.max_length}."
            )
        return example


def _grid(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def load_jsonl_records(path: str | os.PathLike) -> list[dict]:
    """Reads a JSONL training file: one JSON object per line (blank lines skipped).

    Record kinds (relative image paths are relative to the JSONL file):

    - text SFT: `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}` (the last message is the
      assistant's answer, the target), or `{"prompt": str, "response": str}`;
    - text-to-image: `{"prompt": str, "image": "path.png"}` or `{"prompt": str, "image_codes": [[...], ...]}`
      (a 2-D list, or a flat list with `"grid": [h, w]`);
    - editing: `{"instruction": str, "source_image": "a.png", "edited_image": "b.png"}`, or codes
      `"source_codes"`/`"edited_codes"` (2-D, or flat with `"source_grid"`/`"edited_grid"`).
    """
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg}).") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_number}: each line must be a JSON object, got {type(record).__name__}.")
            records.append(record)
    if not records:
        raise ValueError(f"{path} holds no records.")
    return records


class MaskedDiffusionDataset(torch.utils.data.Dataset):
    """Records encoded once, up front (so a bad record fails before training starts, naming its line)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], encoder: LLaDAUniTrainingDataEncoder, source=None):
        base_dir = os.path.dirname(os.path.abspath(source)) if source is not None else None
        self.examples = [
            encoder.encode(record, what=f"{source}:record {i + 1}" if source else f"record {i}", base_dir=base_dir)
            for i, record in enumerate(records)
        ]

    @classmethod
    def from_jsonl(cls, path, encoder: LLaDAUniTrainingDataEncoder) -> MaskedDiffusionDataset:
        return cls(load_jsonl_records(path), encoder, source=str(path))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> MaskedDiffusionExample:
        return self.examples[index]


# --------------------------------------------------------------------------------------------------------------------
# Objective configuration, collator, mask, loss
# --------------------------------------------------------------------------------------------------------------------

FORMS = ("doubled", "one_block")
LOSS_WEIGHTINGS = ("none", "inverse_t")


@dataclass
class MaskedDiffusionConfig:
    """Options of the masked-diffusion objective.

    Args:
        block_length: blocks of the block-diffusion mask, counted from position 0 (the model's
            `config.block_length`, 32 for the release, when None).
        noise_range: `(lo, hi)` of the uniform noise level, `0 < lo <= hi <= 1`.
        per_block_noise: one noise level per block instead of per sequence.
        form: `"doubled"` (`[x_t | x_0]` under the BD3-LM mask, every block per pass) or `"one_block"` (one block per
            pass: clean prefix + that noisy block, block-causal).
        loss_weighting: `"none"` (public recipe: mean over masked tokens) or `"inverse_t"` (original LLaDA: each
            masked token's loss divided by its noise level, summed, divided by the number of maskable tokens; use it
            with `noise_range=(1e-3, 1.0)`).
        text_dropout: probability of replacing a text-to-image caption or an editing instruction with
            `<uncondition>` (0.1 in the closest published recipe).
        image_dropout: probability of replacing an editing source image with a bare `<|image|>`.
        max_length: longest allowed padded sequence (records that do not fit are rejected by the encoder).
        pad_to_multiple_of: round the batch length up (EOS padding for text targets).
    """

    block_length: int | None = None
    noise_range: tuple[float, float] = (0.3, 0.8)
    per_block_noise: bool = False
    form: str = "doubled"
    loss_weighting: str = "none"
    text_dropout: float = 0.0
    image_dropout: float = 0.0
    max_length: int | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.block_length is not None and (not isinstance(self.block_length, int) or self.block_length <= 0):
            raise ValueError(f"`block_length` must be a positive integer or None, got {self.block_length!r}.")
        if not isinstance(self.noise_range, (tuple, list)) or len(self.noise_range) != 2:
            raise ValueError(f"`noise_range` must be a pair (lo, hi), got {self.noise_range!r}.")
        lo, hi = (float(v) for v in self.noise_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"`noise_range` must satisfy 0 < lo <= hi <= 1, got {self.noise_range!r}.")
        self.noise_range = (lo, hi)
        if self.form not in FORMS:
            raise ValueError(f"`form` must be one of {FORMS}, got {self.form!r}.")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"`loss_weighting` must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}.")
        for name in ("text_dropout", "image_dropout"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
        for name in ("max_length", "pad_to_multiple_of"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")

    def resolved_block_length(self, model_config=None) -> int:
        if self.block_length is not None:
            return self.block_length
        if model_config is not None and getattr(model_config, "block_length", None):
            return int(model_config.block_length)
        raise ValueError("`block_length` is not set and no model config gives one.")


class DataCollatorForMaskedDiffusion:
    """Pads, applies condition dropout and noises a batch of [`MaskedDiffusionExample`]s.

    Returns a dict of tensors:

    - `input_ids` `[B, L]`: the clean sequence `x_0` (prompt + target + padding);
    - `noisy_input_ids` `[B, L]`: `x_t`, masked target tokens replaced by `<|mask|>`;
    - `masked` `[B, L]` bool: where `x_t` was masked (the loss positions);
    - `maskable` `[B, L]` bool: the target positions (text: answer + EOS padding);
    - `attention_mask` `[B, L]`: 1 for real tokens (image targets' padding is 0);
    - `noise_level` `[B, L]` float: each token's noise level `t`;
    - `block_index` `[B]` (one-block form only): the block trained in this pass.

    Args:
        special_tokens: ids from [`LLaDAUniSpecialTokens.from_tokenizer`].
        config: a [`MaskedDiffusionConfig`] (its `block_length` must be set, or pass `model_config`).
        generator / seed: the source of every random draw (see the module docstring for the order).
    """

    def __init__(
        self,
        special_tokens: LLaDAUniSpecialTokens,
        config: MaskedDiffusionConfig | None = None,
        model_config=None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        if not isinstance(special_tokens, LLaDAUniSpecialTokens):
            raise TypeError(
                f"`special_tokens` must be a LLaDAUniSpecialTokens, got {type(special_tokens).__name__}."
            )
        self.special = special_tokens
        self.config = config if config is not None else MaskedDiffusionConfig()
        if not isinstance(self.config, MaskedDiffusionConfig):
            raise TypeError(f"`config` must be a MaskedDiffusionConfig, got {type(self.config).__name__}.")
        self.block_length = self.config.resolved_block_length(model_config)
        if generator is not None and seed is not None:
            raise ValueError("Pass either `generator` or `seed`, not both.")
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(0 if seed is None else int(seed))
        self.generator = generator

    def _choose_prompts(self, examples: Sequence[MaskedDiffusionExample]) -> list[list[int]]:
        cfg = self.config
        if cfg.text_dropout == 0.0 and cfg.image_dropout == 0.0:
            return [list(e.prompt_ids) for e in examples]
        draws = torch.rand(len(examples), 2, generator=self.generator)
        prompts = []
        for example, (u_text, u_image) in zip(examples, draws.tolist()):
            drop_text = u_text < cfg.text_dropout and "no_text" in example.dropout_prompts
            drop_image = u_image < cfg.image_dropout and "no_image" in example.dropout_prompts
            if drop_text and drop_image:
                # Both conditions gone is not one of the guidance branches: keep the one dropped by the larger margin.
                if cfg.text_dropout - u_text >= cfg.image_dropout - u_image:
                    drop_image = False
                else:
                    drop_text = False
            if drop_text:
                prompts.append(list(example.dropout_prompts["no_text"]))
            elif drop_image:
                prompts.append(list(example.dropout_prompts["no_image"]))
            else:
                prompts.append(list(example.prompt_ids))
        return prompts

    def __call__(self, examples: Sequence[MaskedDiffusionExample]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("Cannot collate an empty batch.")
        for i, example in enumerate(examples):
            if not isinstance(example, MaskedDiffusionExample):
                raise TypeError(
                    f"Batch item {i} is a {type(example).__name__}, not a MaskedDiffusionExample; encode records with "
                    "LLaDAUniTrainingDataEncoder."
                )
        cfg, special = self.config, self.special
        prompts = self._choose_prompts(examples)
        lengths = [len(p) + len(e.response_ids) + (1 if e.pad_with_eos else 0) for p, e in zip(prompts, examples)]
        length = max(lengths)
        if cfg.pad_to_multiple_of:
            length = -(-length // cfg.pad_to_multiple_of) * cfg.pad_to_multiple_of
        if cfg.max_length is not None:
            if max(lengths) > cfg.max_length:
                worst = lengths.index(max(lengths))
                raise ValueError(
                    f"Batch item {worst} is {lengths[worst]} tokens long, longer than max_length={cfg.max_length}."
                )
            length = min(length, cfg.max_length)

        batch = len(examples)
        input_ids = torch.full((batch, length), special.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, length), dtype=torch.long)
        maskable = torch.zeros((batch, length), dtype=torch.bool)
        for row, (prompt, example) in enumerate(zip(prompts, examples)):
            start = len(prompt)
            end = start + len(example.response_ids)
            input_ids[row, :start] = torch.tensor(prompt, dtype=torch.long)
            input_ids[row, start:end] = torch.tensor(example.response_ids, dtype=torch.long)
            if example.pad_with_eos:
                input_ids[row, end:] = special.eos_token_id
                maskable[row, start:] = True
                attention_mask[row, :] = 1
            else:
                maskable[row, start:end] = True
                attention_mask[row, :end] = 1

        lo, hi = cfg.noise_range
        num_blocks = -(-length // self.block_length)
        if cfg.per_block_noise:
            block_t = lo + (hi - lo) * torch.rand(batch, num_blocks, generator=self.generator)
            block_of = torch.arange(length) // self.block_length
            noise_level = block_t[:, block_of]
        else:
            noise_level = (lo + (hi - lo) * torch.rand(batch, generator=self.generator))[:, None].expand(batch, length)
        draws = torch.rand(batch, length, generator=self.generator)
        masked = (draws < noise_level) & maskable
        # Zero-masked guard: a sequence with a target always contributes at least one masked token.
        empty = maskable.any(dim=1) & ~masked.any(dim=1)
        if empty.any():
            first = draws.masked_fill(~maskable, 2.0).argmin(dim=1)
            rows = empty.nonzero()[:, 0]
            masked[rows, first[rows]] = True
        noisy = input_ids.masked_fill(masked, special.mask_token_id)

        out = {
            "input_ids": input_ids,
            "noisy_input_ids": noisy,
            "masked": masked,
            "maskable": maskable,
            "attention_mask": attention_mask,
            "noise_level": noise_level.contiguous().float(),
        }
        if cfg.form == "one_block":
            block_has_mask = torch.zeros(batch, num_blocks, dtype=torch.bool)
            block_has_mask.index_put_(
                (masked.nonzero()[:, 0], masked.nonzero()[:, 1] // self.block_length), torch.tensor(True)
            )
            pick = torch.rand(batch, generator=self.generator)
            block_index = torch.zeros(batch, dtype=torch.long)
            for row in range(batch):
                candidates = block_has_mask[row].nonzero()[:, 0]
                if len(candidates):
                    block_index[row] = candidates[min(int(pick[row] * len(candidates)), len(candidates) - 1)]
            out["block_index"] = block_index
        return out


def block_diffusion_attention_mask(attention_mask: torch.Tensor, block_length: int) -> torch.Tensor:
    """The BD3-LM mask of the doubled sequence `[x_t | x_0]`, boolean `[B, 1, 2L, 2L]` (True = attend).

    A noisy token sees its own noisy block and the clean copies of earlier blocks; a clean token sees the clean tokens
    of its own and earlier blocks; padding keys (attention_mask 0) are never seen.
    """
    if attention_mask.ndim != 2:
        raise ValueError(f"`attention_mask` must be 2-D [batch, length], got shape {tuple(attention_mask.shape)}.")
    if not isinstance(block_length, int) or block_length <= 0:
        raise ValueError(f"`block_length` must be a positive integer, got {block_length!r}.")
    length = attention_mask.shape[1]
    block = torch.arange(length, device=attention_mask.device) // block_length
    q, k = block[:, None], block[None, :]
    noisy_noisy = q == k
    noisy_clean = k < q
    clean_clean = k <= q
    clean_noisy = torch.zeros_like(noisy_noisy)
    pattern = torch.cat(
        [torch.cat([noisy_noisy, noisy_clean], dim=1), torch.cat([clean_noisy, clean_clean], dim=1)], dim=0
    )
    keys = attention_mask.bool().repeat(1, 2)
    return (pattern[None, :, :] & keys[:, None, :])[:, None, :, :]


@dataclass
class MaskedDiffusionLossOutput:
    loss: torch.Tensor
    per_sequence_loss: torch.Tensor
    num_masked: torch.Tensor
    logits: torch.Tensor | None = None


def _masked_positions_forward(model, input_ids, attention_mask, position_ids, keep, block_length=None):
    kwargs = {}
    if block_length is not None:
        kwargs["block_length"] = block_length
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=keep,
        use_cache=False,
        **kwargs,
    )
    return outputs.logits


def masked_diffusion_loss(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    config: MaskedDiffusionConfig | None = None,
    return_logits: bool = False,
) -> MaskedDiffusionLossOutput:
    """The masked-diffusion loss of a batch from [`DataCollatorForMaskedDiffusion`].

    The LM head runs only at masked positions (`logits_to_keep` as a boolean mask). The form is the one-block form
    when the batch carries `block_index`, else the doubled form. Sequences without any masked token are left out of
    the batch mean; a batch without any masked token gives a zero loss that still back-propagates.
    """
    config = config if config is not None else MaskedDiffusionConfig()
    required = ("input_ids", "noisy_input_ids", "masked", "attention_mask", "noise_level")
    missing = [key for key in required if key not in batch]
    if missing:
        raise ValueError(f"The batch lacks {missing}; build it with DataCollatorForMaskedDiffusion.")
    model_config = getattr(model, "config", None)
    block_length = config.resolved_block_length(model_config)
    clean, noisy = batch["input_ids"], batch["noisy_input_ids"]
    masked, attention_mask = batch["masked"].bool(), batch["attention_mask"]
    batch_size, length = clean.shape
    device = clean.device
    positions = torch.arange(length, device=device)

    if "block_index" in batch:
        block_index = batch["block_index"].to(device)
        block_of = positions // block_length
        in_block = block_of[None, :] == block_index[:, None]
        loss_positions = masked & in_block
        ends = ((block_index + 1) * block_length).clamp(max=length)
        window = int(ends.max())
        # Clean prefix before the chosen block, the noisy block itself; nothing after it is needed.
        ids = torch.where(block_of[None, :] < block_index[:, None], clean, noisy)[:, :window]
        pad = attention_mask.bool()[:, :window] & (positions[None, :window] < ends[:, None])
        logits = _masked_positions_forward(
            model,
            ids,
            pad.long(),
            positions[:window][None, :].expand(batch_size, window),
            loss_positions[:, :window],
            block_length=block_length,
        )
    else:
        loss_positions = masked
        ids = torch.cat([noisy, clean], dim=1)
        mask4d = block_diffusion_attention_mask(attention_mask, block_length)
        pos = positions.repeat(2)[None, :].expand(batch_size, 2 * length)
        keep = torch.cat([masked, torch.zeros_like(masked)], dim=1)
        logits = _masked_positions_forward(model, ids, mask4d, pos, keep)

    targets = clean[loss_positions]
    token_loss = F.cross_entropy(logits.float(), targets, reduction="none")
    rows = loss_positions.nonzero()[:, 0]
    num_masked = loss_positions.sum(dim=1)
    if config.loss_weighting == "inverse_t":
        token_loss = token_loss / batch["noise_level"].to(token_loss.device)[loss_positions]
        if "block_index" in batch:
            denominator = (batch["maskable"].bool() & in_block).sum(dim=1) if "maskable" in batch else num_masked
        else:
            denominator = batch["maskable"].bool().sum(dim=1) if "maskable" in batch else num_masked
    else:
        denominator = num_masked
    summed = torch.zeros(batch_size, dtype=token_loss.dtype, device=token_loss.device).index_add(0, rows, token_loss)
    valid = num_masked > 0
    per_sequence = summed / denominator.clamp(min=1).to(summed.dtype)
    if valid.any():
        loss = per_sequence[valid].mean()
    else:
        loss = logits.sum() * 0.0
    return MaskedDiffusionLossOutput(
        loss=loss, per_sequence_loss=per_sequence, num_masked=num_masked, logits=logits if return_logits else None
    )


# --------------------------------------------------------------------------------------------------------------------
# PEFT
# --------------------------------------------------------------------------------------------------------------------

# Attention projections, the dense MLP of the first layers and the shared experts. Routed experts (per-expert modules
# of a 4-bit model) are excluded: they are opt-in. Full-match regex, as PEFT applies a string target.
DEFAULT_LORA_TARGET_MODULES = (
    r".*\.attention\.(query_key_value|dense)"
    r"|.*\.mlp\.(gate_proj|up_proj|down_proj)"
    r"|.*\.mlp\.shared_experts\.(gate_proj|up_proj|down_proj)"
)
# Fused 3-D routed experts, adapted through PEFT's `target_parameters`.
ROUTED_EXPERT_TARGET_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
# Routed experts after 4-bit quantization (one Linear4bit per expert and projection).
ROUTED_EXPERT_TARGET_MODULES = r".*\.mlp\.experts\.\d+\.(gate_proj|up_proj|down_proj)"
_ROUTER_PATTERN = re.compile(r"(^|\.)mlp\.gate(\.|$)")


def _has_quantized_experts(model) -> bool:
    return any(isinstance(module, LLaDAUniExperts4bit) for module in model.modules())


def llada_uni_lora_config(
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.0,
    target_modules: str | Sequence[str] | None = None,
    train_routed_experts: bool = False,
    quantized_experts: bool = False,
    **kwargs,
):
    """A `peft.LoraConfig` with the LLaDA2.0-Uni default targets.

    Args:
        target_modules: override the default (attention `query_key_value`/`dense`, dense MLP, shared experts).
        train_routed_experts: also adapt the routed experts: through `target_parameters` on the fused 3-D experts,
            or (with `quantized_experts`, after [`quantize_routed_experts`] / [`load_llada_uni_4bit`]) the per-expert
            4-bit modules.
        kwargs: any other `LoraConfig` field.
    """
    from peft import LoraConfig

    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"`r` must be a positive integer, got {r!r}.")
    targets = DEFAULT_LORA_TARGET_MODULES if target_modules is None else target_modules
    target_parameters = kwargs.pop("target_parameters", None)
    if train_routed_experts:
        if quantized_experts:
            if not isinstance(targets, str):
                targets = "|".join(rf".*\.{re.escape(t)}" for t in targets)
            targets = f"{targets}|{ROUTED_EXPERT_TARGET_MODULES}"
        else:
            target_parameters = list(target_parameters or []) + list(ROUTED_EXPERT_TARGET_PARAMETERS)
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        target_parameters=target_parameters,
        bias="none",
        **kwargs,
    )


def _module_matches(name: str, target: str | Sequence[str]) -> bool:
    if isinstance(target, str):
        return re.fullmatch(target, name) is not None
    return any(name == t or name.endswith("." + t) for t in target)


def _check_lora_targets(model: nn.Module, lora_config) -> None:
    names = [name for name, _ in model.named_modules()]
    targets = lora_config.target_modules
    if isinstance(targets, (set, frozenset)):
        targets = sorted(targets)
    if targets:
        items = [targets] if isinstance(targets, str) else list(targets)
        for item in items:
            hits = [n for n in names if _module_matches(n, item if isinstance(targets, str) else [item])]
            if not hits:
                suffixes = sorted({n.rsplit(".", 1)[-1] for n in names if n and not n.rsplit(".", 1)[-1].isdigit()})
                raise ValueError(
                    f"The LoRA target {item!r} matches no module of {type(model).__name__}; module names end in: "
                    f"{suffixes}."
                )
            routers = [n for n in hits if _ROUTER_PATTERN.search(n) and not n.endswith("_proj")]
            if routers:
                raise ValueError(
                    f"The LoRA target {item!r} matches the MoE router ({routers[0]}); the router and its expert_bias "
                    "stay frozen under LoRA."
                )
    parameter_names = [name for name, _ in model.named_parameters()]
    for item in lora_config.target_parameters or []:
        if not any(n == item or n.endswith("." + item) for n in parameter_names):
            raise ValueError(
                f"The LoRA target parameter {item!r} matches no parameter of {type(model).__name__}"
                + (
                    " (its routed experts are quantized per expert: adapt them with `train_routed_experts=True, "
                    "quantized_experts=True`)."
                    if _has_quantized_experts(model)
                    else "."
                )
            )
        if _ROUTER_PATTERN.search(item):
            raise ValueError(f"The LoRA target parameter {item!r} is the MoE router, which stays frozen.")


def get_llada_uni_peft_model(model: nn.Module, lora_config=None, adapter_name: str = "default", **lora_kwargs):
    """Wraps `model` with LoRA adapters (`peft.get_peft_model`), defaults from [`llada_uni_lora_config`].

    Every target is checked first: a target that matches nothing, or one that would adapt the MoE router, raises a
    ValueError. The router weight and `expert_bias` stay frozen. For a 4-bit model, call it after
    [`load_llada_uni_4bit`]; it runs `peft.prepare_model_for_kbit_training` (without gradient checkpointing unless
    asked with `use_gradient_checkpointing=True`).

    The result is a plain `peft.PeftModel` (no task type): its forward, `generate` and the image generation methods
    go straight to the model, with the adapter active.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    use_gradient_checkpointing = lora_kwargs.pop("use_gradient_checkpointing", False)
    if lora_config is None:
        lora_kwargs.setdefault("quantized_experts", _has_quantized_experts(model))
        lora_config = llada_uni_lora_config(**lora_kwargs)
    elif lora_kwargs:
        raise ValueError(f"Pass LoRA options either in `lora_config` or as keywords, not both: {sorted(lora_kwargs)}.")
    if not isinstance(lora_config, LoraConfig):
        raise TypeError(f"`lora_config` must be a peft.LoraConfig, got {type(lora_config).__name__}.")
    _check_lora_targets(model, lora_config)
    if getattr(model, "is_loaded_in_4bit", False) or _has_quantized_experts(model):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_gradient_checkpointing)
    elif use_gradient_checkpointing:
        model.gradient_checkpointing_enable()
    peft_model = get_peft_model(model, lora_config, adapter_name=adapter_name)
    for name, parameter in peft_model.named_parameters():
        if _ROUTER_PATTERN.search(name) and "lora_" not in name:
            parameter.requires_grad_(False)
    return peft_model


def adapter_size_bytes(peft_model, adapter_name: str = "default") -> int:
    """Bytes of the adapter's own weights (what `save_pretrained` writes, without the file headers)."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, adapter_name=adapter_name)
    return sum(t.numel() * t.element_size() for t in state.values())


# --------------------------------------------------------------------------------------------------------------------
# QLoRA: routed experts in 4 bits
# --------------------------------------------------------------------------------------------------------------------


class _ExpertMLP(nn.Module):
    """One routed expert as three linears, named like the released per-expert checkpoint keys."""

    def __init__(self, hidden_size: int, intermediate_size: int, act_fn):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.act_fn = act_fn

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LLaDAUniExperts4bit(nn.ModuleList):
    """The routed experts as one module per expert (`experts.E.{gate,up,down}_proj`), so bitsandbytes can store each
    projection as a `Linear4bit` (it only quantizes 2-D linears; the fused 3-D experts would stay in full precision).

    Same call as the fused `LLaDAUniExperts`: `(hidden_states, top_k_index, top_k_weights)`.
    """

    def __init__(self, config):
        from transformers.activations import ACT2FN

        act_fn = ACT2FN[config.hidden_act]
        super().__init__(
            [_ExpertMLP(config.hidden_size, config.moe_intermediate_size, act_fn) for _ in range(config.num_experts)]
        )
        self.num_experts = config.num_experts

    def forward(self, hidden_states, top_k_index, top_k_weights):
        final_hidden_states = torch.zeros_like(hidden_states)
        with torch.no_grad():
            expert_mask = F.one_hot(top_k_index, num_classes=self.num_experts).permute(2, 1, 0)
            expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert_idx in expert_hit[:, 0].tolist():
            top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
            out = self[expert_idx](hidden_states[token_idx]) * top_k_weights[token_idx, top_k_pos, None]
            final_hidden_states.index_add_(0, token_idx, out.to(final_hidden_states.dtype))
        return final_hidden_states


def _is_fused_experts(module: nn.Module) -> bool:
    # By structure, so the copy of the modeling file that remote code loads is recognised too.
    return (
        type(module).__name__ == "LLaDAUniExperts"
        and isinstance(getattr(module, "gate_up_proj", None), torch.Tensor)
        and module.gate_up_proj.ndim == 3
    )


def _bnb_linear(in_features, out_features, quantization_config):
    import bitsandbytes as bnb

    return bnb.nn.Linear4bit(
        in_features,
        out_features,
        bias=False,
        compute_dtype=quantization_config.bnb_4bit_compute_dtype,
        compress_statistics=quantization_config.bnb_4bit_use_double_quant,
        quant_type=quantization_config.bnb_4bit_quant_type,
        quant_storage=quantization_config.bnb_4bit_quant_storage,
    )


def _check_bnb_config(quantization_config):
    from transformers import BitsAndBytesConfig

    if quantization_config is None:
        return BitsAndBytesConfig(load_in_4bit=True)
    if not isinstance(quantization_config, BitsAndBytesConfig) or not quantization_config.load_in_4bit:
        raise ValueError(
            f"Expected a BitsAndBytesConfig with load_in_4bit=True, got {quantization_config!r}."
        )
    return quantization_config


@torch.no_grad()
def quantize_routed_experts(model: nn.Module, quantization_config=None) -> nn.Module:
    """Replaces every fused routed-expert module of an already loaded `model` by [`LLaDAUniExperts4bit`] in 4 bits.

    Use it after `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True))` (which quantizes
    the 2-D linears only) or on a full-precision model. Layer by layer, so the extra memory is one layer's experts.
    [`load_llada_uni_4bit`] quantizes the experts while loading instead, never holding them in full precision.
    """
    import bitsandbytes as bnb

    quantization_config = _check_bnb_config(quantization_config)
    config = model.config
    replaced = 0
    for name, module in list(model.named_modules()):
        if not _is_fused_experts(module):
            continue
        device = module.gate_up_proj.device
        intermediate = module.gate_up_proj.shape[1] // 2
        new = LLaDAUniExperts4bit(config)
        for e, expert in enumerate(new):
            weights = {
                "gate_proj": module.gate_up_proj[e, :intermediate],
                "up_proj": module.gate_up_proj[e, intermediate:],
                "down_proj": module.down_proj[e],
            }
            for proj, weight in weights.items():
                linear = _bnb_linear(weight.shape[1], weight.shape[0], quantization_config)
                linear.weight = bnb.nn.Params4bit(
                    weight.detach().to("cpu").contiguous().clone(),
                    requires_grad=False,
                    quant_type=quantization_config.bnb_4bit_quant_type,
                    compress_statistics=quantization_config.bnb_4bit_use_double_quant,
                    quant_storage=quantization_config.bnb_4bit_quant_storage,
                )
                setattr(expert, proj, linear.to(device))
        model.set_submodule(name, new)
        replaced += 1
    if not replaced:
        raise ValueError(f"{type(model).__name__} has no fused routed experts to quantize.")
    model.is_loaded_in_4bit = True
    model.is_quantized = True
    if getattr(model.config, "quantization_config", None) is None:
        model.config.quantization_config = quantization_config
    return model


def _llada_bnb_quantizer_class():
    from transformers.core_model_loading import WeightConverter
    from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer

    class LLaDAUniBnb4BitHfQuantizer(Bnb4BitHfQuantizer):
        """bitsandbytes 4-bit loading that also quantizes LLaDA2.0-Uni's routed experts: before the weights load, the
        fused experts become per-expert linears (replaced by `Linear4bit` like every other linear), and the
        checkpoint's per-expert keys load into them directly instead of being fused."""

        def _process_model_before_weight_loading(self, model, device_map=None, **kwargs):
            with torch.device("meta"):
                for name, module in list(model.named_modules()):
                    if _is_fused_experts(module):
                        model.set_submodule(name, LLaDAUniExperts4bit(model.config))
            return super()._process_model_before_weight_loading(model, device_map=device_map, **kwargs)

        def update_weight_conversions(self, weight_conversions, model):
            if _has_quantized_experts(model):
                weight_conversions = [
                    c
                    for c in weight_conversions
                    if not (
                        isinstance(c, WeightConverter)
                        and any(
                            str(t).endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj"))
                            for t in c._original_target_patterns
                        )
                    )
                ]
            return super().update_weight_conversions(weight_conversions, model)

    return LLaDAUniBnb4BitHfQuantizer


@contextlib.contextmanager
def _llada_bnb_4bit_loading():
    # `from_pretrained` builds its quantizer from the registry and takes no quantizer instance; swapping the entry only
    # for the duration of one call keeps every other model's bitsandbytes loading untouched.
    from transformers.quantizers import auto

    key = "bitsandbytes_4bit"
    previous = auto.AUTO_QUANTIZER_MAPPING[key]
    auto.AUTO_QUANTIZER_MAPPING[key] = _llada_bnb_quantizer_class()
    try:
        yield
    finally:
        auto.AUTO_QUANTIZER_MAPPING[key] = previous


def load_llada_uni_4bit(pretrained_model_name_or_path, quantization_config=None, model_class=None, **kwargs):
    """`from_pretrained` with bitsandbytes 4-bit quantization of every linear AND of the routed experts.

    Plain `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True))` leaves the fused 3-D
    experts (nearly all of the parameters) in full precision. Here the per-expert checkpoint tensors are quantized as
    they are read. Defaults: `BitsAndBytesConfig(load_in_4bit=True)`, `AutoModelForCausalLM`.
    """
    from transformers import AutoModelForCausalLM

    quantization_config = _check_bnb_config(quantization_config)
    model_class = model_class or AutoModelForCausalLM
    with _llada_bnb_4bit_loading():
        model = model_class.from_pretrained(
            pretrained_model_name_or_path, quantization_config=quantization_config, **kwargs
        )
    if not _has_quantized_experts(model):
        raise ValueError(f"{pretrained_model_name_or_path} did not load LLaDA2.0-Uni routed experts.")
    return model


__all__ = [
    "LLaDAUniSpecialTokens",
    "MaskedDiffusionExample",
    "LLaDAUniTrainingDataEncoder",
    "MaskedDiffusionDataset",
    "load_jsonl_records",
    "MaskedDiffusionConfig",
    "DataCollatorForMaskedDiffusion",
    "block_diffusion_attention_mask",
    "MaskedDiffusionLossOutput",
    "masked_diffusion_loss",
    "DEFAULT_LORA_TARGET_MODULES",
    "ROUTED_EXPERT_TARGET_PARAMETERS",
    "ROUTED_EXPERT_TARGET_MODULES",
    "llada_uni_lora_config",
    "get_llada_uni_peft_model",
    "adapter_size_bytes",
    "LLaDAUniExperts4bit",
    "quantize_routed_experts",
    "load_llada_uni_4bit",
]
