# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Training data for LLaDA2.0-Uni: records -> encoded examples (with the prompts inference builds), `datasets` in and
out, and the collator that pads and noises a batch.

Records are rows of a `datasets.Dataset` or `IterableDataset` (or lines of a JSON-lines file). A row uses the columns of
its kind; the other columns may be absent or None, so text, text-to-image and editing rows mix in one set:

- text SFT: `messages` (a chat whose last message is the assistant's answer, the target), or `prompt` + `response`;
- text-to-image: `prompt` + `image`, or `prompt` + `image_codes` (a 2-D list, or a flat list with `grid` [h, w]);
- editing: `instruction` + `source_image` / `source_codes` (+ `source_grid`) + `edited_image` / `edited_codes`
  (+ `edited_grid`).

A picture is a path (a relative one is read from `base_dir`; for a JSON-lines file, the file's folder), a PIL image, an
array, or a `datasets.Image` value; the image processor loads it (`LLaDAUniImageProcessor.load_image`) and the image
tokenizer turns it into codes. An encoded row has the columns of [`ENCODED_COLUMNS`].

Noise: [`DataCollatorForMaskedDiffusion`] draws every random number of an example from generators keyed by
`(seed, epoch, example index, purpose)`, so an example gets the same noise whichever batch, process or resumed run it
lands in (one process, data parallel and FSDP runs of one global batch see the same noisy inputs):

1. `"condition"` (only when a dropout probability is > 0): two uniforms; the first below `text_dropout` replaces the
   caption or instruction with `<uncondition>`, the second below `image_dropout` drops the editing source image;
2. `"level"`: one uniform `u` (one per block with `per_block_noise`), noise level `t = lo + (hi - lo) * u`;
3. `"tokens"`: one uniform per position of the padded row; a maskable token is masked where its draw is below its `t`.
   A row with maskable tokens but none masked gets its maskable token with the smallest draw masked;
4. `"block"` (one-block form only): one uniform picks, uniformly, one of the blocks that hold a masked token.

Each stream is a prefix-stable sequence, so padding a row further only appends draws.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .prompting_llada_uni import (
    LLaDAUniSpecialTokenIds,
    build_editing_prompts,
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    encode_text,
    get_special_token_ids,
)
from .training_objective_llada_uni import MaskedDiffusionConfig

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import PIL.Image
    from transformers import PreTrainedConfig, PreTrainedTokenizerBase

    from .modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel
    from .processing_llada_uni import LLaDAUniProcessor


TASK_TEXT = "text"
TASK_TEXT_TO_IMAGE = "text_to_image"
TASK_IMAGE_EDITING = "image_editing"
TASKS = (TASK_TEXT, TASK_TEXT_TO_IMAGE, TASK_IMAGE_EDITING)

# The columns of an encoded row (what `encode_training_dataset` returns and the collator reads).
ENCODED_COLUMNS = (
    "index",
    "task",
    "prompt_ids",
    "response_ids",
    "pad_with_eos",
    "no_text_prompt_ids",
    "no_image_prompt_ids",
)
_DROPOUT_COLUMNS = {"no_text": "no_text_prompt_ids", "no_image": "no_image_prompt_ids"}


class TrainingRecordError(ValueError):
    """A record that cannot be encoded; `column` names the field at fault (None when it is the record as a whole)."""

    def __init__(self, column: str | None, message: str):
        self.column = column
        self.message = message
        super().__init__(f"column {column!r}: {message}" if column else message)


# --------------------------------------------------------------------------------------------------------------------
# Encoded examples
# --------------------------------------------------------------------------------------------------------------------


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
        index: the example's position in its data set; it keys the example's noise (see the module docstring). The
            collator numbers examples without one in the order it sees them.
    """

    prompt_ids: list[int]
    response_ids: list[int]
    task: str = TASK_TEXT
    pad_with_eos: bool = True
    dropout_prompts: dict[str, list[int]] = field(default_factory=dict)
    index: int | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids) + (1 if self.pad_with_eos else 0)

    def to_features(self) -> dict[str, Any]:
        """The example as one row of [`ENCODED_COLUMNS`] (what a `datasets.Dataset` stores)."""
        row = {
            "index": self.index,
            "task": self.task,
            "prompt_ids": list(self.prompt_ids),
            "response_ids": list(self.response_ids),
            "pad_with_eos": bool(self.pad_with_eos),
        }
        for key, column in _DROPOUT_COLUMNS.items():
            prompt = self.dropout_prompts.get(key)
            row[column] = list(prompt) if prompt is not None else None
        return row

    @classmethod
    def from_features(cls, row: Mapping[str, Any]) -> MaskedDiffusionExample:
        """The inverse of [`to_features`]: an example from an encoded row."""
        missing = [column for column in ("prompt_ids", "response_ids") if column not in row]
        if missing:
            raise TypeError(
                f"A batch item lacks the columns {missing} of an encoded example (it has {sorted(row)}); encode the "
                "records with `encode_training_dataset` (or LLaDAUniTrainingDataEncoder) first."
            )
        dropout = {key: list(row[column]) for key, column in _DROPOUT_COLUMNS.items() if row.get(column) is not None}
        return cls(
            prompt_ids=list(row["prompt_ids"]),
            response_ids=list(row["response_ids"]),
            task=row.get("task") or TASK_TEXT,
            pad_with_eos=bool(row.get("pad_with_eos", True)),
            dropout_prompts=dropout,
            index=None if row.get("index") is None else int(row["index"]),
        )


# --------------------------------------------------------------------------------------------------------------------
# Records -> examples
# --------------------------------------------------------------------------------------------------------------------


def _grid_value(value, column: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or any(not isinstance(g, int) or isinstance(g, bool) or g <= 0 for g in value)
    ):
        raise TrainingRecordError(column, f"a grid must be two positive integers [h, w], got {value!r}.")
    return int(value[0]), int(value[1])


def _check_codes(codes, grid, codebook_size: int, column: str, grid_column: str) -> tuple[list[int], tuple[int, int]]:
    if isinstance(codes, torch.Tensor):
        if grid is None and codes.ndim == 2:
            grid = tuple(int(g) for g in codes.shape)
        codes = codes.reshape(-1).tolist()
    elif not isinstance(codes, (list, tuple)):
        raise TrainingRecordError(column, f"image codes must be a list (2-D, or flat with a grid), got {type(codes).__name__}.")
    elif codes and isinstance(codes[0], (list, tuple)):
        widths = {len(row) for row in codes}
        if len(widths) != 1:
            raise TrainingRecordError(column, f"the rows of a 2-D code list differ in length ({sorted(widths)}).")
        if grid is None:
            grid = (len(codes), len(codes[0]))
        codes = [c for row in codes for c in row]
    if grid is None:
        raise TrainingRecordError(grid_column, "flat image codes need a grid [h, w].")
    h, w = grid
    if any(not isinstance(c, int) or isinstance(c, bool) for c in codes):
        raise TrainingRecordError(column, "image codes must be integers.")
    if len(codes) != h * w:
        raise TrainingRecordError(column, f"{len(codes)} image codes do not fill the grid {h} x {w} ({h * w} codes).")
    bad = [c for c in codes if not 0 <= c < codebook_size]
    if bad:
        raise TrainingRecordError(column, f"image code {bad[0]} is outside the codebook [0, {codebook_size}).")
    return [int(c) for c in codes], (int(h), int(w))


def _load_picture(value, base_dir: str | None, column: str):
    """One picture -> PIL, through the image processor's loader (`datasets.Image` values decoded by datasets)."""
    from .image_processing_llada_uni import LLaDAUniImageProcessor

    if isinstance(value, Mapping) and ("bytes" in value or "path" in value):
        # A `datasets.Image` column read without decoding: {"bytes": ..., "path": ...}.
        if value.get("bytes") is None and value.get("path") is not None:
            value = value["path"]
        else:
            import datasets

            try:
                value = datasets.Image().decode_example(dict(value))
            except Exception as error:  # noqa: BLE001 - PIL and datasets raise many types for bad bytes
                raise TrainingRecordError(column, f"cannot decode the image ({type(error).__name__}: {error}).") from error
    if isinstance(value, (str, os.PathLike)) and base_dir is not None and not os.path.isabs(value):
        value = os.path.join(base_dir, value)
    try:
        return LLaDAUniImageProcessor.load_image(value)
    except (ValueError, TypeError) as error:
        raise TrainingRecordError(column, str(error)) from error


@contextlib.contextmanager
def _as_record_error(column: str):
    # The prompt builders validate the grid (a side needs its `<|reserved_token_N|>`): their errors name the column.
    try:
        yield
    except ValueError as error:
        if isinstance(error, TrainingRecordError):
            raise
        raise TrainingRecordError(column, str(error)) from error


class LLaDAUniTrainingDataEncoder:
    """Turns training records into [`MaskedDiffusionExample`]s, with the same prompts that inference uses.

    Called on a record (`encoder(record, index)`) it returns an encoded row ([`ENCODED_COLUMNS`]), which is what
    `datasets.Dataset.map` needs; [`encode_training_dataset`] does that for a whole data set.

    Args:
        tokenizer: the model's tokenizer (its chat template renders the text SFT prompts).
        config: the model config (image offset and codebook size, mask and EOS ids: resolved by
            `prompting_llada_uni.get_special_token_ids`, config first, then the tokenizer).
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
        max_length (*optional*): records whose prompt plus target (plus one EOS for text) is longer raise an error.
        base_dir (*optional*): folder that relative picture paths are read from.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: PreTrainedConfig,
        image_tokenizer: LLaDAUniImageVQModel | Callable[[Any, str], tuple[Any, tuple[int, int]]] | None = None,
        processor: LLaDAUniProcessor | None = None,
        text_to_image_mode: str = "edit_resize_crop",
        editing_mode: str = "edit",
        max_length: int | None = None,
        base_dir: str | os.PathLike | None = None,
    ):
        if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
            raise ValueError(f"`max_length` must be a positive integer or None, got {max_length!r}.")
        self.tokenizer = tokenizer
        self.config = config
        self.special: LLaDAUniSpecialTokenIds = get_special_token_ids(tokenizer, config)
        self.image_tokenizer = image_tokenizer
        self.processor = processor
        self.modes = {TASK_TEXT_TO_IMAGE: text_to_image_mode, TASK_IMAGE_EDITING: editing_mode}
        self.max_length = max_length
        self.base_dir = None if base_dir is None else os.fspath(base_dir)

    # -- text ----------------------------------------------------------------------------------------------------------
    def encode_messages(self, messages: Sequence[Mapping[str, Any]]) -> MaskedDiffusionExample:
        """Chat SFT: the last message must come from the assistant and is the target; everything before it, rendered
        by the chat template with the generation prompt, is the prompt.

        Args:
            messages: `[{"role": ..., "content": ...}, ...]`, ending with the assistant's answer.
        """
        if not isinstance(messages, (list, tuple)) or not messages:
            raise TrainingRecordError("messages", "must be a non-empty list of {'role', 'content'} dicts.")
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") is None or message.get("content") is None:
                raise TrainingRecordError("messages", f"message {i} must be a dict with 'role' and 'content', got {message!r}.")
        last = messages[-1]
        if last["role"] != "assistant" or not isinstance(last["content"], str) or not last["content"]:
            raise TrainingRecordError(
                "messages",
                f"no response: the last message must be a non-empty 'assistant' message, got role {last['role']!r}.",
            )
        if len(messages) < 2:
            raise TrainingRecordError("messages", "an assistant answer needs at least one message before it.")
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        prompt_text = self.tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
        full_text = self.tokenizer.apply_chat_template(chat, tokenize=False)
        if not full_text.startswith(prompt_text):
            raise TrainingRecordError("messages", "the chat template does not render the prompt as a prefix of the chat.")
        example = MaskedDiffusionExample(
            prompt_ids=encode_text(self.tokenizer, prompt_text),
            response_ids=encode_text(self.tokenizer, full_text[len(prompt_text) :]),
            task=TASK_TEXT,
            pad_with_eos=True,
        )
        return self._check_length(example)

    def encode_prompt_response(self, prompt: str, response: str) -> MaskedDiffusionExample:
        """Text SFT from a user prompt and an answer (rendered as a two-message chat).

        Args:
            prompt: the user's message.
            response: the answer (the target).
        """
        if not isinstance(prompt, str) or not prompt:
            raise TrainingRecordError("prompt", "must be a non-empty string.")
        if not isinstance(response, str) or not response:
            raise TrainingRecordError("response", "no response: must be a non-empty string.")
        return self.encode_messages([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])

    # -- images --------------------------------------------------------------------------------------------------------
    def _codes(self, image, codes, grid, task: str, columns: tuple[str, str, str]) -> tuple[list[int], tuple[int, int]]:
        image_column, codes_column, grid_column = columns
        grid = _grid_value(grid, grid_column)
        if codes is not None:
            if image is not None:
                raise TrainingRecordError(codes_column, f"give either {image_column!r} or {codes_column!r}, not both.")
            return _check_codes(codes, grid, self.special.image_codebook_size, codes_column, grid_column)
        if image is None:
            raise TrainingRecordError(image_column, f"give a picture or precomputed codes ({codes_column!r}).")
        if self.image_tokenizer is None:
            raise TrainingRecordError(
                image_column, "the record gives a picture but no image tokenizer was passed; pass `image_tokenizer=` or "
                f"precomputed codes ({codes_column!r})."
            )
        picture = _load_picture(image, self.base_dir, image_column)
        if hasattr(self.image_tokenizer, "encode"):
            if self.processor is None:
                from .processing_llada_uni import LLaDAUniProcessor

                self.processor = LLaDAUniProcessor(
                    tokenizer=self.tokenizer,
                    image_token_offset=self.special.image_token_offset,
                    image_codebook_size=self.special.image_codebook_size,
                )
            with torch.no_grad():
                encoded = self.processor.encode_images(picture, self.image_tokenizer, mode=self.modes[task])
            offset = self.special.image_token_offset
            out_codes = [i - offset for i in encoded["image_tokens"]]
            out_grid = (encoded["h"], encoded["w"])
        elif callable(self.image_tokenizer):
            out_codes, out_grid = self.image_tokenizer(picture, task)
        else:
            raise TypeError(
                "`image_tokenizer` must be a LLaDAUniImageVQModel or a callable (image, task) -> (codes, (h, w)),"
                f" got {type(self.image_tokenizer).__name__}."
            )
        return _check_codes(
            out_codes, tuple(int(g) for g in out_grid), self.special.image_codebook_size, image_column, image_column
        )

    def encode_text_to_image(
        self,
        prompt: str,
        image: str | os.PathLike | PIL.Image.Image | np.ndarray | dict[str, Any] | None = None,
        image_codes: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | None = None,
        grid: Sequence[int] | None = None,
    ) -> MaskedDiffusionExample:
        """Text-to-image: the generation prompt (system + caption + assistant + image header) is the prompt and the
        image codes (with the offset) are the target. The `<uncondition>` prompt is kept for condition dropout.

        Args:
            prompt: the caption.
            image: the picture (needs an image tokenizer), or
            image_codes: its codes, 2-D or flat with `grid` `[h, w]`.
        """
        if not isinstance(prompt, str) or not prompt:
            raise TrainingRecordError("prompt", "must be a non-empty string.")
        codes, (h, w) = self._codes(image, image_codes, grid, TASK_TEXT_TO_IMAGE, ("image", "image_codes", "grid"))
        column = "image_codes" if image_codes is not None else "image"
        with _as_record_error(column):
            prompt_ids = build_text_to_image_prompt(self.tokenizer, prompt, h, w)
            unconditional = build_text_to_image_unconditional_prompt(self.tokenizer, h, w)
        example = MaskedDiffusionExample(
            prompt_ids=prompt_ids,
            response_ids=[c + self.special.image_token_offset for c in codes],
            task=TASK_TEXT_TO_IMAGE,
            pad_with_eos=False,
            dropout_prompts={"no_text": unconditional},
        )
        return self._check_length(example)

    def encode_image_editing(
        self,
        instruction: str,
        source_image: str | os.PathLike | PIL.Image.Image | np.ndarray | dict[str, Any] | None = None,
        edited_image: str | os.PathLike | PIL.Image.Image | np.ndarray | dict[str, Any] | None = None,
        source_codes: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | None = None,
        source_grid: Sequence[int] | None = None,
        edited_codes: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | None = None,
        edited_grid: Sequence[int] | None = None,
    ) -> MaskedDiffusionExample:
        """Editing: system + source image block + instruction + assistant + header is the prompt, the edited image's
        codes are the target (same grid as the source, as at inference).

        Args:
            instruction: the edit to make.
            source_image / source_codes (+ source_grid): the picture to edit, or its codes.
            edited_image / edited_codes (+ edited_grid): the edited picture (the target), or its codes.
        """
        if not isinstance(instruction, str) or not instruction:
            raise TrainingRecordError("instruction", "must be a non-empty string.")
        src, (h, w) = self._codes(
            source_image, source_codes, source_grid, TASK_IMAGE_EDITING, ("source_image", "source_codes", "source_grid")
        )
        columns = ("edited_image", "edited_codes", "edited_grid")
        tgt, grid = self._codes(edited_image, edited_codes, edited_grid, TASK_IMAGE_EDITING, columns)
        if grid != (h, w):
            column = "edited_codes" if edited_codes is not None else "edited_image"
            raise TrainingRecordError(column, f"the edited image grid {grid} differs from the source grid {(h, w)}.")
        offset = self.special.image_token_offset
        with _as_record_error("source_codes" if source_codes is not None else "source_image"):
            full, no_text, no_image = build_editing_prompts(self.tokenizer, [c + offset for c in src], h, w, instruction)
        example = MaskedDiffusionExample(
            prompt_ids=full,
            response_ids=[c + offset for c in tgt],
            task=TASK_IMAGE_EDITING,
            pad_with_eos=False,
            dropout_prompts={"no_text": no_text, "no_image": no_image},
        )
        return self._check_length(example)

    # -- records -------------------------------------------------------------------------------------------------------
    def encode(self, record: Mapping[str, Any]) -> MaskedDiffusionExample:
        """Encodes one record (see the module docstring for its columns; None counts as absent).

        Args:
            record: a dict, e.g. one row of a `datasets.Dataset`.
        """
        if not isinstance(record, Mapping):
            raise TrainingRecordError(None, f"a record must be a dict, got {type(record).__name__}.")
        get = record.get
        if get("messages") is not None:
            return self.encode_messages(get("messages"))
        if get("instruction") is not None:
            return self.encode_image_editing(
                get("instruction"),
                source_image=get("source_image"),
                edited_image=get("edited_image"),
                source_codes=get("source_codes"),
                source_grid=get("source_grid"),
                edited_codes=get("edited_codes"),
                edited_grid=get("edited_grid"),
            )
        if get("image") is not None or get("image_codes") is not None:
            return self.encode_text_to_image(
                get("prompt"), image=get("image"), image_codes=get("image_codes"), grid=get("grid")
            )
        if get("prompt") is not None:
            if get("response") is None:
                raise TrainingRecordError(
                    "response", "no response: a text record needs 'response' (or 'messages'); a text-to-image record "
                    "needs 'image' or 'image_codes'."
                )
            return self.encode_prompt_response(get("prompt"), get("response"))
        present = sorted(key for key, value in record.items() if value is not None)
        raise TrainingRecordError(
            None,
            "the record has none of 'messages', 'prompt' + 'response', 'prompt' + 'image' / 'image_codes', "
            f"'instruction' + source and edited pictures; its non-empty columns are {present}.",
        )

    def __call__(self, record: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
        """`encode(record)` as an encoded row ([`ENCODED_COLUMNS`]), for `datasets.Dataset.map(with_indices=True)`."""
        example = self.encode(record)
        example.index = index
        return example.to_features()

    def _check_length(self, example: MaskedDiffusionExample) -> MaskedDiffusionExample:
        if not example.response_ids:
            raise TrainingRecordError(None, "no response: the target is empty.")
        longest = max([len(example.prompt_ids)] + [len(p) for p in example.dropout_prompts.values()])
        needed = longest + len(example.response_ids) + (1 if example.pad_with_eos else 0)
        if self.max_length is not None and needed > self.max_length:
            raise TrainingRecordError(
                None,
                f"the record is {needed} tokens long (prompt {longest} + target {len(example.response_ids)}"
                + (" + EOS" if example.pad_with_eos else "")
                + f"), longer than max_length={self.max_length}.",
            )
        return example


# --------------------------------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------------------------------


class _RowLocator:
    """Names a row in errors: `file:line (row N)` for a JSON-lines file (blank lines are not rows), else `row N`."""

    def __init__(self, source: str | None = None):
        self.source = None if source is None else os.fspath(source)
        self._lines = None

    def __call__(self, index: int | None) -> str:
        where = f"row {index}" if index is not None else "a row"
        if self.source is None:
            return where
        if index is not None and os.path.isfile(self.source) and self.source.lower().endswith((".json", ".jsonl")):
            if self._lines is None:
                self._lines = _scan_json_lines(self.source) or []
            if 0 <= index < len(self._lines):
                return f"{self.source}:{self._lines[index]} ({where})"
        return f"{self.source} {where}"


def _encode_row(encoder: LLaDAUniTrainingDataEncoder, locate: _RowLocator):
    def encode(record, index=None):
        try:
            return encoder(record, index)
        except TrainingRecordError as error:
            column = f", column {error.column!r}" if error.column else ""
            raise ValueError(f"{locate(index)}{column}: {error.message}") from error

    return encode


def encode_training_dataset(
    data: datasets.Dataset | datasets.IterableDataset | Sequence[Mapping[str, Any]],
    encoder: LLaDAUniTrainingDataEncoder,
    *,
    source: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Encodes training records into rows of [`ENCODED_COLUMNS`], ready for [`DataCollatorForMaskedDiffusion`].

    Args:
        data: a `datasets.Dataset` (encoded now, in memory: a bad row fails before training starts), a
            `datasets.IterableDataset` (encoded lazily, as it is read), or a list of record dicts.
        encoder: the [`LLaDAUniTrainingDataEncoder`].
        source (*optional*): where the records come from, for error messages (for a JSON-lines file, the errors
            name its line).

    Returns:
        A `datasets.Dataset` or `datasets.IterableDataset` (the same kind as `data`; a list gives a `Dataset`).

    Errors name the row and the column: `train.jsonl:7 (row 5), column 'image_codes': 3 image codes do not fill
    the grid 2 x 2 (4 codes).`
    """
    import datasets

    encode = _encode_row(encoder, _RowLocator(source))
    if isinstance(data, (list, tuple)):
        rows = [encode(record, i) for i, record in enumerate(data)]
        return datasets.Dataset.from_list(rows, features=_encoded_features())
    if isinstance(data, datasets.IterableDataset):
        encoded = data.map(encode, with_indices=True, remove_columns=data.column_names)
        return encoded.select_columns(list(ENCODED_COLUMNS))
    if isinstance(data, datasets.Dataset):
        # The encoder holds a tokenizer (and maybe a model): a fingerprint of our own instead of hashing them.
        digest = hashlib.sha256(
            json.dumps(
                [data._fingerprint, type(encoder).__name__, sorted(encoder.modes.items()), encoder.max_length,
                 encoder.base_dir, getattr(encoder.tokenizer, "name_or_path", None), repr(encoder.special)]
            ).encode()
        ).hexdigest()[:16]
        return data.map(
            encode,
            with_indices=True,
            remove_columns=data.column_names,
            features=_encoded_features(),
            keep_in_memory=True,
            new_fingerprint=f"llada-uni-{digest}",
            desc="Encoding training records",
        )
    raise TypeError(
        f"`data` must be a datasets.Dataset, a datasets.IterableDataset or a list of record dicts, got "
        f"{type(data).__name__}."
    )


def _encoded_features():
    import datasets

    ids = datasets.List(datasets.Value("int64"))
    return datasets.Features(
        {
            "index": datasets.Value("int64"),
            "task": datasets.Value("string"),
            "prompt_ids": ids,
            "response_ids": ids,
            "pad_with_eos": datasets.Value("bool"),
            "no_text_prompt_ids": ids,
            "no_image_prompt_ids": ids,
        }
    )


def _scan_json_lines(path: str) -> array | None:
    """Checks a JSON / JSON-lines file line by line, raising a ValueError that names file and line for bytes that are
    not UTF-8, a line that is not JSON or not an object. Returns the line number of each row (JSON lines), or None
    for a file holding one JSON document."""
    lines = array("q")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1})."
                ) from None
            if not text.strip():
                continue
            if not lines and text.lstrip().startswith("["):
                return _scan_json_document(path)
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                if not lines:
                    # A pretty-printed JSON document spreads one object over many lines.
                    return _scan_json_document(path)
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: each line must be a JSON object, got {type(record).__name__}.")
            lines.append(number)
    if not lines:
        raise ValueError(f"{path} holds no records.")
    return lines


def _scan_json_document(path: str) -> None:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x}).") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg} at column {error.colno}).") from None
    return None


_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


def load_training_dataset(
    path: str | os.PathLike, split: str = "train", streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """Training records from a file, a folder or a data set name, through `datasets`.

    Args:
        path: a JSON-lines / JSON / parquet / CSV / arrow file (`load_dataset("json", data_files=path)` and the
            like), a folder written by `Dataset.save_to_disk`, any other folder or a Hub data set name
            (`load_dataset(path)`, from the local cache when `HF_HUB_OFFLINE=1`).
        split: the split to read (`"train"`).
        streaming: read as a `datasets.IterableDataset` (encoded while training reads it).

    Returns:
        The `datasets.Dataset` / `IterableDataset` of records. A JSON(-lines) file is checked first: bytes that are not
        UTF-8, a line that is not JSON or not an object raise a ValueError naming the file and the line. Pass the
        path as `source=` to [`encode_training_dataset`] so its errors name lines too; relative picture paths are read
        from the encoder's `base_dir` (the file's folder is the usual choice).
    """
    import datasets

    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if os.path.isfile(path):
        builder = _FILE_BUILDERS.get(suffix)
        if builder is None:
            raise ValueError(
                f"{path}: unknown data file type {suffix or '(none)'!r}; use one of {sorted(_FILE_BUILDERS)}, a folder "
                "or a data set name."
            )
        if builder == "json":
            _scan_json_lines(path)

        def load():
            return datasets.load_dataset(builder, data_files=path, split=split, streaming=streaming)

    elif os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, name)) for name in ("state.json", "dataset_dict.json")
    ):

        def load():
            loaded = datasets.load_from_disk(path)
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise KeyError(f"no split {split!r}; it has {sorted(loaded)}")
                loaded = loaded[split]
            return loaded.to_iterable_dataset() if streaming else loaded

    elif os.path.isdir(path) or not (path.startswith((".", "/", "~")) or suffix in _FILE_BUILDERS):

        def load():
            return datasets.load_dataset(path, split=split, streaming=streaming)

    else:
        raise ValueError(f"Training data {path!r} does not exist.")
    try:
        return load()
    except Exception as error:  # noqa: BLE001 - datasets and pyarrow raise many types; the user needs one line
        if os.path.isfile(path) and _FILE_BUILDERS.get(suffix) == "json":
            conflict = _column_type_conflict(path)
            if conflict:
                raise ValueError(conflict) from error
        cause = error.__cause__ or error
        raise ValueError(f"Cannot read training data from {path!r}: {type(cause).__name__}: {cause}") from error


def _value_kind(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        inner = next((_value_kind(v) for v in value if v is not None), None)
        return f"list of {inner}" if inner else "list"
    if isinstance(value, dict):
        return "object"
    return {bool: "boolean", int: "number", float: "number", str: "string"}.get(type(value), type(value).__name__)


def _column_type_conflict(path: str) -> str | None:
    """The first line whose value of a column has another kind than on an earlier line (datasets needs one type per
    column: e.g. flat image codes on one line, 2-D ones on another)."""
    first: dict[str, tuple[str, int]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                return None
            for column, value in record.items():
                kind = _value_kind(value)
                if kind is None or kind == "list":
                    continue
                seen = first.setdefault(column, (kind, number))
                if seen[0] != kind:
                    return (
                        f"{path}:{number}: column {column!r} is a {kind} here but a {seen[0]} on line {seen[1]}; a data "
                        "set needs one type per column (write image codes either all flat with a grid, or all 2-D)."
                    )
    return None


def MaskedDiffusionDataset(  # noqa: N802
    records: datasets.Dataset | datasets.IterableDataset | Sequence[Mapping[str, Any]],
    encoder: LLaDAUniTrainingDataEncoder,
    source: str | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Deprecated: use [`encode_training_dataset`] (this name stays for existing code).

    Returns `encode_training_dataset(records, encoder, source=source)`: a `datasets.Dataset` of encoded rows.
    """
    import warnings

    warnings.warn(
        "`MaskedDiffusionDataset` is deprecated: use `encode_training_dataset` (a datasets.Dataset of encoded rows).",
        FutureWarning,
        stacklevel=2,
    )
    return encode_training_dataset(records, encoder, source=source)


# --------------------------------------------------------------------------------------------------------------------
# Collator
# --------------------------------------------------------------------------------------------------------------------


class DataCollatorForMaskedDiffusion:
    """Pads, applies condition dropout and noises a batch of encoded examples.

    Takes rows of [`ENCODED_COLUMNS`] (what a data set from [`encode_training_dataset`] yields) or
    [`MaskedDiffusionExample`]s, and returns a dict of tensors:

    - `input_ids` `[B, L]`: the clean sequence `x_0` (prompt + target + padding);
    - `noisy_input_ids` `[B, L]`: `x_t`, masked target tokens replaced by `<|mask|>`;
    - `masked` `[B, L]` bool: where `x_t` was masked (the loss positions);
    - `maskable` `[B, L]` bool: the target positions (text: answer + EOS padding);
    - `attention_mask` `[B, L]`: 1 for real tokens (image targets' padding is 0);
    - `noise_level` `[B, L]` float: each token's noise level `t`;
    - `block_index` `[B]` (one-block form only): the block trained in this pass.

    Args:
        special_tokens: the ids from `prompting_llada_uni.get_special_token_ids(tokenizer, config)` (the encoder's
            `special`).
        config: a [`MaskedDiffusionConfig`] (its `block_length` must be set, or pass `model_config`).
        model_config (*optional*): the model config (block length, padding id).
        seed: keys every random draw, with the epoch ([`set_epoch`]; the trainer sets it) and the example's index
            (see the module docstring).
        pad_token_id (*optional*): the id that pads image targets (never a target, never attended); default the
            model config's `pad_token_id`, else EOS.
    """

    def __init__(
        self,
        special_tokens: LLaDAUniSpecialTokenIds,
        config: MaskedDiffusionConfig | None = None,
        model_config: PreTrainedConfig | None = None,
        seed: int = 0,
        pad_token_id: int | None = None,
    ):
        if not isinstance(special_tokens, LLaDAUniSpecialTokenIds):
            raise TypeError(
                "`special_tokens` must be the LLaDAUniSpecialTokenIds of `get_special_token_ids(tokenizer, config)` "
                f"(the encoder's `special`), got {type(special_tokens).__name__}."
            )
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
        self.special = special_tokens
        self.config = config if config is not None else MaskedDiffusionConfig()
        if not isinstance(self.config, MaskedDiffusionConfig):
            raise TypeError(f"`config` must be a MaskedDiffusionConfig, got {type(self.config).__name__}.")
        self.block_length = self.config.resolved_block_length(model_config)
        if pad_token_id is None:
            pad_token_id = getattr(model_config, "pad_token_id", None)
        self.pad_token_id = int(pad_token_id) if pad_token_id is not None else special_tokens.eos_token_id
        self.seed = seed
        self.epoch = 0
        self._next_index = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch keys the noise with the seed and the example index: each epoch noises an example afresh."""
        self.epoch = int(epoch)

    def _generator(self, index: int, purpose: str) -> torch.Generator:
        key = hashlib.blake2b(f"{self.seed}:{self.epoch}:{index}:{purpose}".encode(), digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(key, "little") & ((1 << 63) - 1))

    def _examples(self, features) -> list[MaskedDiffusionExample]:
        examples = []
        for i, item in enumerate(features):
            if isinstance(item, MaskedDiffusionExample):
                example = item
            elif isinstance(item, Mapping):
                example = MaskedDiffusionExample.from_features(item)
            else:
                raise TypeError(
                    f"Batch item {i} is a {type(item).__name__}, not an encoded example; encode the records with "
                    "`encode_training_dataset` (or LLaDAUniTrainingDataEncoder)."
                )
            if example.index is None:
                example = MaskedDiffusionExample(**{**example.__dict__, "index": self._next_index})
                self._next_index += 1
            examples.append(example)
        return examples

    def _choose_prompt(self, example: MaskedDiffusionExample) -> list[int]:
        cfg = self.config
        if cfg.text_dropout == 0.0 and cfg.image_dropout == 0.0:
            return list(example.prompt_ids)
        u_text, u_image = torch.rand(2, generator=self._generator(example.index, "condition")).tolist()
        drop_text = u_text < cfg.text_dropout and "no_text" in example.dropout_prompts
        drop_image = u_image < cfg.image_dropout and "no_image" in example.dropout_prompts
        if drop_text and drop_image:
            # Both conditions gone is not one of the guidance branches: keep the one dropped by the larger margin.
            if cfg.text_dropout - u_text >= cfg.image_dropout - u_image:
                drop_image = False
            else:
                drop_text = False
        if drop_text:
            return list(example.dropout_prompts["no_text"])
        if drop_image:
            return list(example.dropout_prompts["no_image"])
        return list(example.prompt_ids)

    def __call__(self, features: Sequence[MaskedDiffusionExample | Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("Cannot collate an empty batch.")
        examples = self._examples(features)
        cfg, special = self.config, self.special
        prompts = [self._choose_prompt(e) for e in examples]
        lengths = [len(p) + len(e.response_ids) + (1 if e.pad_with_eos else 0) for p, e in zip(prompts, examples)]
        length = max(lengths)
        if cfg.max_length is not None and length > cfg.max_length:
            worst = lengths.index(length)
            raise ValueError(
                f"Example {examples[worst].index} is {length} tokens long, longer than max_length={cfg.max_length}."
            )
        if cfg.pad_to_multiple_of:
            length = -(-length // cfg.pad_to_multiple_of) * cfg.pad_to_multiple_of
            if cfg.max_length is not None:
                length = min(length, cfg.max_length)

        batch = len(examples)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
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
        block_of = torch.arange(length) // self.block_length
        noise_level = torch.empty(batch, length)
        draws = torch.empty(batch, length)
        for row, example in enumerate(examples):
            levels = lo + (hi - lo) * torch.rand(
                num_blocks if cfg.per_block_noise else 1, generator=self._generator(example.index, "level")
            )
            noise_level[row] = levels[block_of] if cfg.per_block_noise else levels.expand(length)
            draws[row] = torch.rand(length, generator=self._generator(example.index, "tokens"))
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
            "noise_level": noise_level,
        }
        if cfg.form == "one_block":
            block_index = torch.zeros(batch, dtype=torch.long)
            for row, example in enumerate(examples):
                candidates = block_of[masked[row]].unique()
                if len(candidates):
                    pick = float(torch.rand(1, generator=self._generator(example.index, "block")))
                    block_index[row] = candidates[min(int(pick * len(candidates)), len(candidates) - 1)]
            out["block_index"] = block_index
        return out


__all__ = [
    "TASK_TEXT",
    "TASK_TEXT_TO_IMAGE",
    "TASK_IMAGE_EDITING",
    "ENCODED_COLUMNS",
    "TrainingRecordError",
    "MaskedDiffusionExample",
    "LLaDAUniTrainingDataEncoder",
    "encode_training_dataset",
    "load_training_dataset",
    "MaskedDiffusionDataset",
    "DataCollatorForMaskedDiffusion",
]
