# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Prompt construction for LLaDA2.0-Uni: the one place where token ids are built from a tokenizer.

Every function is pure (tokenizer first, no model needed) and returns plain `list[int]`, so the generation mixin and
the processor build byte-identical prompts. The layouts are the original implementation's:

- text-to-image: `"<role>SYSTEM</role> {system} <role>HUMAN</role>" + prompt + "<role>ASSISTANT</role>" + header`,
  each piece tokenised on its own (no BOS/EOS) and concatenated; the unconditional branch replaces the prompt with
  the plain text `<uncondition>`;
- image header: `<|image|><|reserved_token_{h}|><|reserved_token_{w}|><boi>`;
- understanding: `header + image ids + <|/image|> + question` (raw, as the original) or the same image block inside
  the tokenizer's chat template; several images put their blocks one after another, in order, before the question;
- editing: `sys + header + image + <|/image|> + instruction + "<role>ASSISTANT</role>" + header`, with the no-text
  (`<uncondition>` instead of the instruction) and no-image (a bare `<|image|>` instead of the image block) branches.

Special ids (mask, EOS, image markers) are looked up in the model config first and then in the tokenizer, never
hard-coded: the released `config.json` does not store the mask id.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transformers.utils import logging

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


T2I_SYSTEM_PROMPT = "You are a text-to-image generation assistant."
THINKING_SYSTEM_PROMPT = "You are a text-to-image generation assistant with a thinking process."
EDIT_SYSTEM_PROMPT = "You are an image editing assistant."
UNCONDITIONAL_TEXT = "<uncondition>"
ASSISTANT_TURN = "<role>ASSISTANT</role>"

MASK_TOKEN = "<|mask|>"
EOS_TOKEN = "<|endoftext|>"
IMAGE_TOKEN = "<|image|>"
END_IMAGE_TOKEN = "<|/image|>"
BOI_TOKEN = "<boi>"
RESERVED_SIZE_TOKEN = "<|reserved_token_{}|>"

# Grid sides are written with `<|reserved_token_N|>`; the largest N the released tokenizer has is 255.
_MAX_GRID_SIDE = 255

logger = logging.get_logger(__name__)
_RESERVED_RE = re.compile(r"^<\|reserved_token_(\d+)\|>$")


@dataclass(frozen=True)
class LLaDAUniSpecialTokenIds:
    """Ids of the special tokens of LLaDA2.0-Uni, resolved by [`get_special_token_ids`] (the one resolver: generation,
    the processor, training and conversion call it). A field that was not required and could not be resolved is
    None.

    Args:
        mask_token_id, eos_token_id, image_token_id (`<|image|>`), end_image_token_id (`<|/image|>`), boi_token_id
            (`<boi>`) (`int`): the tokens' ids; `eos_token_id` is the first of `eos_token_ids`.
        image_token_offset, image_codebook_size (`int`): image codes are the ids `[offset, offset + size)`.
        pad_token_id (`int`): the config's, else the tokenizer's, else EOS.
        eos_token_ids (`tuple[int, ...]`): every EOS id (a config may list several).
    """

    mask_token_id: int | None
    eos_token_id: int | None
    image_token_id: int | None
    end_image_token_id: int | None
    boi_token_id: int | None
    image_token_offset: int | None
    image_codebook_size: int | None
    pad_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()


# What `get_special_token_ids` requires unless told otherwise: everything a prompt of any mode needs.
ALL_SPECIAL_TOKENS = ("mask_token_id", "eos_token_id", "image_token_id", "end_image_token_id", "boi_token_id",
                      "image_token_offset", "image_codebook_size")


def _token_id(tokenizer, token: str) -> int | None:
    """Id of `token` if it is a single token of this vocabulary (not the unknown token), else None."""
    converted = tokenizer.convert_tokens_to_ids(token)
    if converted is None or isinstance(converted, list):
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and converted == unk and token != getattr(tokenizer, "unk_token", None):
        return None
    # Some tokenizers map any string to an id; accept it only if it maps back to the same token.
    if tokenizer.convert_ids_to_tokens(int(converted)) != token:
        return None
    return int(converted)


def _require_token_id(tokenizer, token: str) -> int:
    token_id = _token_id(tokenizer, token)
    if token_id is None:
        raise ValueError(f"The tokenizer has no `{token}` token, which LLaDA2.0-Uni prompts need.")
    return token_id


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of `text` alone: no BOS/EOS and no chat template (how the original tokenises each prompt piece)."""
    if not isinstance(text, str):
        raise TypeError(f"Expected a string to tokenise, got {type(text).__name__}.")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def get_special_token_ids(tokenizer: PreTrainedTokenizerBase | None = None, config: Any = None,
                          required: Sequence[str] = ALL_SPECIAL_TOKENS) -> LLaDAUniSpecialTokenIds:
    """Resolve the special token ids, from `config` (the model config, or a view of it with a generation config's
    values on top) first, then `tokenizer`. The one resolver of the project.

    The released `config.json` has no `mask_token_id`; the tokenizer's `<|mask|>` then supplies it. The image range
    is `[image_token_offset, image_token_offset + image_codebook_size)` from the config; without a config it is
    read from the tokenizer's `<IMAGE0>` token and the vocabulary size.

    Args:
        tokenizer (*optional*): the LLaDA2.0-Uni tokenizer.
        config (*optional*): any object with the id attributes (`mask_token_id`, `eos_token_id` (an int or a list),
            `pad_token_id`, `image_token_offset`, `image_codebook_size`, `vocab_size`, ...).
        required (`Sequence[str]`, defaults to every field a prompt needs): the fields that must resolve; a
            ValueError names the first that does not. Others that do not resolve are None.
    """
    unknown = set(required) - set(ALL_SPECIAL_TOKENS)
    if unknown:
        raise ValueError(f"`required` names unknown fields {sorted(unknown)}; choose from {ALL_SPECIAL_TOKENS}.")

    def from_config(name):
        return getattr(config, name, None) if config is not None else None

    def first(value):
        if isinstance(value, (list, tuple)):
            return value[0] if value else None
        return value

    def missing(name, token):
        if name not in required:
            return None
        hint = (
            "no tokenizer was given; pass the LLaDA2.0-Uni tokenizer (e.g. `tokenizer=`)"
            if tokenizer is None else f"the tokenizer has no `{token}` token"
        )
        raise ValueError(f"Cannot resolve `{name}` ({token}): it is not set in the config and {hint}, or set "
                         f"`{name}`.")

    def resolve(name, token, tokenizer_attr=None):
        value = first(from_config(name))
        if value is not None:
            return int(value)
        if tokenizer is not None:
            if tokenizer_attr is not None and getattr(tokenizer, tokenizer_attr, None) is not None:
                return int(getattr(tokenizer, tokenizer_attr))
            token_id = _token_id(tokenizer, token)
            if token_id is not None:
                return token_id
        return missing(name, token)

    mask = resolve("mask_token_id", MASK_TOKEN, "mask_token_id")
    eos = resolve("eos_token_id", EOS_TOKEN, "eos_token_id")
    eos_ids = from_config("eos_token_id")
    eos_ids = tuple(int(t) for t in eos_ids) if isinstance(eos_ids, (list, tuple)) else ()
    eos_ids = eos_ids or (() if eos is None else (eos,))
    image = resolve("image_token_id", IMAGE_TOKEN)
    end_image = resolve("end_image_token_id", END_IMAGE_TOKEN)
    boi = resolve("boi_token_id", BOI_TOKEN)
    pad = first(from_config("pad_token_id"))
    if pad is None and tokenizer is not None:
        pad = getattr(tokenizer, "pad_token_id", None)
    pad = eos if pad is None else int(pad)

    offset = from_config("image_token_offset")
    if offset is None and tokenizer is not None:
        offset = _token_id(tokenizer, "<IMAGE0>")
    if offset is None:
        offset = missing("image_token_offset", "<IMAGE0>")
    codebook = from_config("image_codebook_size")
    if codebook is None and offset is not None:
        vocab_size = from_config("vocab_size")
        if vocab_size is None and tokenizer is not None:
            vocab_size = len(tokenizer)
        if vocab_size is not None:
            codebook = int(vocab_size) - int(offset)
    if codebook is None and "image_codebook_size" in required:
        raise ValueError("Cannot resolve `image_codebook_size`: set it (or `vocab_size`) in the config.")
    return LLaDAUniSpecialTokenIds(
        mask_token_id=mask,
        eos_token_id=eos,
        image_token_id=image,
        end_image_token_id=end_image,
        boi_token_id=boi,
        image_token_offset=None if offset is None else int(offset),
        image_codebook_size=None if codebook is None else int(codebook),
        pad_token_id=pad,
        eos_token_ids=eos_ids,
    )


def pad_sequences(sequences: Sequence[Sequence[int]], pad_token_id: int,
                  side: str = "left") -> tuple[list[list[int]], list[list[int]]]:
    """Pad id sequences to the longest one: `(ids, attention_mask)`, the mask 1 on real ids. The one padding helper
    (the processor's batches and generation's outputs use it).

    Args:
        sequences (`Sequence[Sequence[int]]`): the rows.
        pad_token_id (`int`): the id that fills the padding.
        side (`str`, defaults to `"left"`): where the padding goes, `"left"` (prompts) or `"right"`.
    """
    if side not in ("left", "right"):
        raise ValueError(f"`side` must be 'left' or 'right', got {side!r}.")
    length = max((len(row) for row in sequences), default=0)
    ids, mask = [], []
    for row in sequences:
        row = [int(t) for t in row]
        fill = length - len(row)
        ids.append([pad_token_id] * fill + row if side == "left" else row + [pad_token_id] * fill)
        mask.append([0] * fill + [1] * len(row) if side == "left" else [1] * len(row) + [0] * fill)
    return ids, mask


def valid_image_grid_sizes(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Grid side lengths `N` (image codes per row or column) that have a `<|reserved_token_N|>` in this tokenizer.

    For the released tokenizer: 8, 10, ..., 34 and 36..255 (odd sizes below 36 are other special tokens).
    """
    sizes = set()
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if get_vocab is not None:
        for token in get_vocab():
            match = _RESERVED_RE.match(token)
            if match:
                sizes.add(int(match.group(1)))
    else:
        sizes = {n for n in range(1, _MAX_GRID_SIDE + 1) if _token_id(tokenizer, RESERVED_SIZE_TOKEN.format(n))}
    return sorted(sizes)


def _format_sizes(sizes: Sequence[int]) -> str:
    """Compact listing of sorted sizes, e.g. `8, 10, ..., 34, 36..255`."""
    sizes = sorted(sizes)
    if not sizes:
        return "none"
    parts, i = [], 0
    while i < len(sizes):
        j = i
        while j + 1 < len(sizes) and sizes[j + 1] == sizes[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{sizes[i]}..{sizes[j]}")
            i = j + 1
            continue
        j = i
        # an even/odd stride run stops where a consecutive run begins
        while (j + 1 < len(sizes) and sizes[j + 1] == sizes[j] + 2
               and not (j + 2 < len(sizes) and sizes[j + 2] == sizes[j + 1] + 1)):
            j += 1
        if j - i >= 2:
            parts.append(f"{sizes[i]}, {sizes[i] + 2}, ..., {sizes[j]}")
        else:
            parts.extend(str(v) for v in sizes[i : j + 1])
        i = j + 1
    return ", ".join(parts)


def image_grid_size(image_h: int, image_w: int) -> tuple[int, int]:
    """Code grid `(h, w)` for a requested picture size in pixels: `(image_h // 2) // 16` by `(image_w // 2) // 16`
    (the decoder renders each code as 2 x 16 pixels). A 1024 x 1024 request gives 32 x 32 codes."""
    for name, value in (("image_h", image_h), ("image_w", image_w)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{name}` must be a positive number of pixels, got {value!r}.")
        side = (value // 2) // 16
        if side * 32 != value:
            logger.warning(
                f"`{name}={value}` is not a multiple of 32 px (each code is rendered as 2 x 16 px): the picture will be "
                f"{side * 32} px ({side} codes)."
            )
    return (image_h // 2) // 16, (image_w // 2) // 16


def image_header_ids(tokenizer: PreTrainedTokenizerBase, h: int, w: int, unknown_sides: str = "raise") -> list[int]:
    """`<|image|><|reserved_token_{h}|><|reserved_token_{w}|><boi>`: the header that opens an image of h x w codes.

    A side without a `<|reserved_token_N|>` token (the released vocabulary lacks 1..7 and odd sizes below 36):
    `unknown_sides="raise"` raises a ValueError listing the valid sizes (where the model is to generate that grid);
    `"text"` tokenises that piece as plain text, which is what the original's string prompt turns into, and logs a
    warning (where a picture fixes the grid: the understanding resize gives e.g. 12 x 6 codes for a tall 90 x 200 px
    picture).
    """
    if unknown_sides not in ("raise", "text"):
        raise ValueError(f"`unknown_sides` must be 'raise' or 'text', got {unknown_sides!r}.")
    ids = [_require_token_id(tokenizer, IMAGE_TOKEN)]
    for name, side in (("h", h), ("w", w)):
        if not isinstance(side, int) or isinstance(side, bool) or side <= 0:
            raise ValueError(f"Image grid {name}={side!r} must be a positive int (codes).")
        token = RESERVED_SIZE_TOKEN.format(side)
        token_id = _token_id(tokenizer, token)
        if token_id is not None:
            ids.append(token_id)
        elif unknown_sides == "text":
            logger.warning(
                f"Image grid {name}={side} has no `{token}` token; it is tokenised as plain text, as the original "
                "implementation does. Pictures whose grid sides are all in the vocabulary read better."
            )
            ids.extend(encode_text(tokenizer, token))
        else:
            raise ValueError(
                f"Image grid {name}={side!r} has no `{token}` token. Valid grid sides (codes; "
                f"pixels = 32 x side): {_format_sizes(valid_image_grid_sizes(tokenizer))}."
            )
    ids.append(_require_token_id(tokenizer, BOI_TOKEN))
    return ids


def parse_image_header(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> tuple[int, int] | None:
    """Inverse of [`image_header_ids`]: `(h, w)` if `ids` ends with a well-formed header, else None."""
    ids = list(ids)
    if len(ids) < 4:
        return None
    image, side_h, side_w, boi = ids[-4:]
    if image != _token_id(tokenizer, IMAGE_TOKEN) or boi != _token_id(tokenizer, BOI_TOKEN):
        return None
    sides = []
    for side_id in (side_h, side_w):
        match = _RESERVED_RE.match(tokenizer.convert_ids_to_tokens(int(side_id)) or "")
        if not match:
            return None
        sides.append(int(match.group(1)))
    return sides[0], sides[1]


def _system_turn(tokenizer, system_prompt: str) -> list[int]:
    return encode_text(tokenizer, f"<role>SYSTEM</role> {system_prompt} <role>HUMAN</role>")


def _check_prompt(name: str, text: str):
    if not isinstance(text, str):
        raise TypeError(f"`{name}` must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError(f"`{name}` is empty; give a non-empty text.")


def validate_image_token_ids(image_tokens: Sequence[int], h: int, w: int, image_token_offset: int,
                             image_codebook_size: int, name: str = "image_tokens") -> list[int]:
    """Check that `image_tokens` are `h * w` image ids (codes plus `image_token_offset`) and return them as a list.

    `name` is how error messages call the ids (e.g. `image_tokens[1]` for the second image of a prompt). The grid
    sides must be positive ints (codes); the messages name `h` / `w`.
    """
    for side_name, side in (("h", h), ("w", w)):
        if not isinstance(side, int) or isinstance(side, bool) or side <= 0:
            of = "" if name == "image_tokens" else f" of `{name}`"
            raise ValueError(f"`{side_name}`{of} must be a positive int ({'rows' if side_name == 'h' else 'columns'} "
                             f"of image codes), got {side!r}.")
    if hasattr(image_tokens, "tolist"):
        image_tokens = image_tokens.tolist()
    image_tokens = list(image_tokens)
    if any(isinstance(t, (list, tuple)) for t in image_tokens):
        raise ValueError(f"`{name}` must be a flat sequence of ids for one image (raster order).")
    if len(image_tokens) != h * w:
        raise ValueError(f"`{name}` holds {len(image_tokens)} ids, but the grid h={h} x w={w} needs {h * w}.")
    low, high = image_token_offset, image_token_offset + image_codebook_size
    bad = [t for t in image_tokens if not low <= int(t) < high]
    if bad:
        raise ValueError(
            f"`{name}` holds ids outside the image range [{low}, {high}) (e.g. {bad[0]}): pass image codes "
            f"plus `image_token_offset` ({image_token_offset})."
        )
    return [int(t) for t in image_tokens]


def _unpack_entry(entry) -> tuple[Any, Any, Any]:
    """One `encode_images` entry (a dict, or a list of dicts for one prompt's several images) -> `(image_tokens, h,
    w)` in the one-image (plain values) or several-images (lists) form."""
    items = [entry] if isinstance(entry, dict) else entry
    if isinstance(items, (list, tuple)) and not items:
        raise ValueError("The image entry is an empty list: an understanding prompt needs at least one image.")
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, dict) for item in items):
        raise TypeError(
            "Without `h` and `w`, `image_tokens` must be what `processor.encode_images` returns: a dict "
            "{'image_tokens': ids, 'h': rows, 'w': columns}, or a list of such dicts (one prompt's images); got "
            f"{type(entry).__name__}."
        )
    for index, item in enumerate(items):
        missing = [key for key in ("image_tokens", "h", "w") if key not in item]
        if missing:
            raise TypeError(f"Image {index} lacks {missing}; give `encode_images` dicts or `h` and `w`.")
    values = ([item[key] for item in items] for key in ("image_tokens", "h", "w"))
    if isinstance(entry, dict):
        return tuple(value[0] for value in values)
    return tuple(values)


def _prompt_images(image_tokens, h, w) -> list[tuple[str, list, int, int]]:
    if h is None and w is None:
        image_tokens, h, w = _unpack_entry(image_tokens)
    several_h, several_w = (isinstance(side, (list, tuple)) for side in (h, w))
    if several_h != several_w:
        raise TypeError(
            f"`h` ({h!r}) and `w` ({w!r}) must both be ints (one image) or both sequences of ints (several images)."
        )
    if hasattr(image_tokens, "tolist"):
        image_tokens = image_tokens.tolist()
    if not several_h:
        named = [("image_tokens", image_tokens, h, w)]
    else:
        if not isinstance(image_tokens, (list, tuple)):
            raise TypeError(
                "With several images (`h`, `w` sequences), `image_tokens` must be a sequence of per-image id "
                f"sequences, got {type(image_tokens).__name__}."
            )
        if not (len(h) == len(w) == len(image_tokens)):
            raise ValueError(
                f"Got {len(h)} heights (`h`), {len(w)} widths (`w`) and {len(image_tokens)} id sequences "
                "(`image_tokens`): give one of each per image."
            )
        if not h:
            raise ValueError("`h`, `w` and `image_tokens` are empty: an understanding prompt needs at least one image.")
        named = [(f"image_tokens[{i}]", *image) for i, image in enumerate(zip(image_tokens, h, w))]
    images = []
    for name, ids, side_h, side_w in named:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise TypeError(f"`{name}` must be a sequence of ids (one image), got {type(ids).__name__}.")
        ids = list(ids)
        if any(isinstance(t, (list, tuple)) for t in ids):
            raise TypeError(
                f"`{name}` must be a flat sequence of ids for one image (raster order); for several images give `h` "
                "and `w` as sequences, one per image."
            )
        images.append((name, ids, side_h, side_w))
    return images


def parse_image_inputs(image_tokens: Sequence[int] | Sequence[Sequence[int]]
                       | dict[str, Any] | Sequence[dict[str, Any] | Sequence[dict[str, Any]]],
                       h: int | Sequence[int] | None = None, w: int | Sequence[int] | None = None,
                       texts: str | Sequence[str] | None = None,
                       what: str = "question") -> list[list[tuple[str, list, int, int]]]:
    """The images of each request of a call, in prompt order, as `(name, ids, h, w)`: the one parser of the image
    arguments (`image_tokens`, `h`, `w`) and of what `processor.encode_images` returns.

    One request (`texts` a string or None): `h` and `w` ints and `image_tokens` one image's flat ids; or `h` and `w`
    sequences (one per image) and `image_tokens` one id sequence per image; or, without `h` and `w`, an
    `encode_images` entry (a dict, or a list of dicts for several images). A batch (`texts` a list): `image_tokens`
    holds one `encode_images` entry per text and `h`, `w` are not given. `name` is how error messages call an
    image's ids (`image_tokens`, `image_tokens[i]`). Only the shape of the input is checked here: whether the ids
    fill their `h x w` grid with image ids is checked once, by the caller that owns the ids' meaning
    ([`validate_image_token_ids`]).

    Args:
        image_tokens: the image ids, in one of the forms above.
        h, w (`int` or `Sequence[int]`, *optional*): the grid of each image, when `image_tokens` holds bare ids.
        texts (`str` or `Sequence[str]`, *optional*): the requests' texts (a list makes a batch).
        what (`str`, defaults to `"question"`): how messages call a text (`"question"`, `"instruction"`).
    """
    if not isinstance(texts, (list, tuple)):
        return [_prompt_images(image_tokens, h, w)]
    if h is not None or w is not None:
        raise ValueError(
            f"With a list of {what}s, give `image_tokens` as one `encode_images` entry per {what}; `h` and `w` "
            "come from them."
        )
    if not isinstance(image_tokens, (list, tuple)):
        raise TypeError(
            f"With a list of {what}s, `image_tokens` must be a list of `encode_images` entries, one per {what}; "
            f"got {type(image_tokens).__name__}."
        )
    if len(image_tokens) != len(texts) or not texts:
        raise ValueError(f"Got {len(texts)} {what}s and {len(image_tokens)} image entries: give one entry per {what}.")
    return [_prompt_images(entry, None, None) for entry in image_tokens]


def unpack_encoded_images(images: dict[str, Any] | Sequence[dict[str, Any]]) -> tuple[Any, Any, Any]:
    """Deprecated: use [`parse_image_inputs`]."""
    warnings.warn("`unpack_encoded_images` is deprecated; use `parse_image_inputs`.", FutureWarning, stacklevel=2)
    return _unpack_entry(images)


def understanding_images(image_tokens: Sequence[int] | Sequence[Sequence[int]]
                         | dict[str, Any] | Sequence[dict[str, Any] | Sequence[dict[str, Any]]],
                         h: int | Sequence[int] | None = None,
                         w: int | Sequence[int] | None = None) -> list[tuple[str, list, int, int]]:
    """Deprecated: use [`parse_image_inputs`] (this is its one-request form)."""
    warnings.warn("`understanding_images` is deprecated; use `parse_image_inputs`.", FutureWarning, stacklevel=2)
    return _prompt_images(image_tokens, h, w)


def build_text_to_image_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, h: int, w: int,
                               thinking: bool = False) -> list[int]:
    """Conditional text-to-image prompt: system turn + `prompt` + assistant turn + image header (h x w codes).

    `thinking=True` uses the thinking system prompt (the phase-2 prompt of thinking mode adds the thinking text; see
    [`build_thinking_image_prompt`]).
    """
    _check_prompt("prompt", prompt)
    system = THINKING_SYSTEM_PROMPT if thinking else T2I_SYSTEM_PROMPT
    return (
        _system_turn(tokenizer, system)
        + encode_text(tokenizer, prompt)
        + encode_text(tokenizer, ASSISTANT_TURN)
        + image_header_ids(tokenizer, h, w)
    )


def build_text_to_image_unconditional_prompt(tokenizer: PreTrainedTokenizerBase, h: int, w: int,
                                             thinking: bool = False, text: str | None = None) -> list[int]:
    """Unconditional branch of text-to-image guidance: the prompt is replaced by the plain text `<uncondition>` (the
    original's), or by `text` (a negative prompt)."""
    system = THINKING_SYSTEM_PROMPT if thinking else T2I_SYSTEM_PROMPT
    return (
        _system_turn(tokenizer, system)
        + encode_text(tokenizer, UNCONDITIONAL_TEXT if text is None else text)
        + encode_text(tokenizer, ASSISTANT_TURN)
        + image_header_ids(tokenizer, h, w)
    )


def build_thinking_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Phase 1 of thinking mode: thinking system turn + `prompt` + assistant turn; the model writes its reasoning and
    then the image header."""
    _check_prompt("prompt", prompt)
    return (
        _system_turn(tokenizer, THINKING_SYSTEM_PROMPT)
        + encode_text(tokenizer, prompt)
        + encode_text(tokenizer, ASSISTANT_TURN)
    )


def build_thinking_image_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, thinking_ids: Sequence[int], h: int,
                                w: int) -> list[int]:
    """Phase 2 of thinking mode: the phase-1 prompt, the model's reasoning (`thinking_ids`, without the header it
    wrote) and the header of the requested grid."""
    return build_thinking_prompt(tokenizer, prompt) + [int(t) for t in thinking_ids] + image_header_ids(tokenizer, h, w)


def image_block_ids(tokenizer: PreTrainedTokenizerBase, image_tokens: Sequence[int], h: int, w: int,
                    unknown_sides: str = "raise") -> list[int]:
    """`header + image ids + <|/image|>`: an image inside a prompt (ids already carry `image_token_offset`);
    `unknown_sides` as in [`image_header_ids`]."""
    return image_header_ids(tokenizer, h, w, unknown_sides) + [int(t) for t in image_tokens] + [
        _require_token_id(tokenizer, END_IMAGE_TOKEN)
    ]


def build_understanding_prompt(tokenizer: PreTrainedTokenizerBase,
                               image_tokens: Sequence[int] | Sequence[Sequence[int]],
                               h: int | Sequence[int] | None, w: int | Sequence[int] | None, question: str,
                               use_chat_template: bool = False, system_prompt: str | None = None) -> list[int]:
    """Image-understanding prompt, for one image or several.

    `use_chat_template=False` (the original): `header + image ids + <|/image|> + question`, no system prompt.
    `use_chat_template=True`: one user turn of the tokenizer's chat template whose content is the image block followed
    by `question`, with the generation prompt (assistant turn) appended; `system_prompt` adds a system turn.

    Several images (`h`, `w` as sequences of ints and `image_tokens` as one id sequence per image, see
    [`parse_image_inputs`]): their blocks `header(h_i, w_i) + ids_i + <|/image|>` follow one another in the given
    order where the one image block goes, so the question comes after all of them. The caller checks that the ids
    fill their grids ([`validate_image_token_ids`]).
    """
    _check_prompt("question", question)
    image = []
    for _, ids, side_h, side_w in _prompt_images(image_tokens, h, w):
        # The picture fixed the grid: a side without its size token is read as the original reads it.
        image += image_block_ids(tokenizer, ids, side_h, side_w, unknown_sides="text")
    if not use_chat_template:
        return image + encode_text(tokenizer, question)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("`use_chat_template=True` needs a tokenizer with a chat template.")
    # The image block is ids, not text: render the template around a placeholder and splice the ids in.
    placeholder = "\u0000LLADA_UNI_IMAGE\u0000"
    messages = [{"role": "user", "content": placeholder + question}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    before, after = rendered.split(placeholder)
    return encode_text(tokenizer, before) + image + encode_text(tokenizer, after)


def build_editing_prompts(tokenizer: PreTrainedTokenizerBase, image_tokens: Sequence[int], h: int, w: int,
                          instruction: str,
                          output_grid: tuple[int, int] | None = None) -> tuple[list[int], list[int], list[int]]:
    """The three branches of editing guidance, `(full, no_text, no_image)`.

    full = `sys + image block + instruction + assistant turn + header`; no_text replaces the instruction with
    `<uncondition>`; no_image keeps a bare `<|image|>` in place of the image block. The output grid is the input grid,
    or `output_grid` (`(h, w)` codes; outpainting writes a larger canvas around the source).
    """
    _check_prompt("instruction", instruction)
    system = _system_turn(tokenizer, EDIT_SYSTEM_PROMPT)
    image = image_block_ids(tokenizer, image_tokens, h, w)
    out_h, out_w = output_grid if output_grid is not None else (h, w)
    tail = encode_text(tokenizer, ASSISTANT_TURN) + image_header_ids(tokenizer, out_h, out_w)
    instruction_ids = encode_text(tokenizer, instruction)
    full = system + image + instruction_ids + tail
    no_text = system + image + encode_text(tokenizer, UNCONDITIONAL_TEXT) + tail
    no_image = system + [_require_token_id(tokenizer, IMAGE_TOKEN)] + instruction_ids + tail
    return full, no_text, no_image


__all__ = [
    "LLaDAUniSpecialTokenIds",
    "T2I_SYSTEM_PROMPT",
    "THINKING_SYSTEM_PROMPT",
    "EDIT_SYSTEM_PROMPT",
    "UNCONDITIONAL_TEXT",
    "encode_text",
    "get_special_token_ids",
    "valid_image_grid_sizes",
    "image_grid_size",
    "image_header_ids",
    "parse_image_header",
    "validate_image_token_ids",
    "ALL_SPECIAL_TOKENS",
    "parse_image_inputs",
    "pad_sequences",
    "understanding_images",
    "image_block_ids",
    "unpack_encoded_images",
    "build_text_to_image_prompt",
    "build_text_to_image_unconditional_prompt",
    "build_thinking_prompt",
    "build_thinking_image_prompt",
    "build_understanding_prompt",
    "build_editing_prompts",
]
