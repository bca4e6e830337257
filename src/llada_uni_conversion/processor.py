# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The tokenizer and the image processor: the released top-level tokenizer and
`image_tokenizer/preprocessor_config.json` -> `LLaDAUniProcessor` files at the top of the converted folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transformers_llada_uni.released_layout_llada_uni import MissingFileError

from .remote_code import strip_remote_code
from .weights import require

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from transformers_llada_uni import LLaDAUniConfig


# Loading options end up in the tokenizer's init kwargs and would be saved into tokenizer_config.json (e.g.
# "local_files_only": true when converting offline), where they would apply to every later load.
_LOADING_OPTIONS = ("local_files_only", "trust_remote_code", "cache_dir", "force_download", "revision", "token",
                    "_commit_hash", "subfolder")


def load_tokenizer(src: Path) -> PreTrainedTokenizerBase:
    """The released tokenizer (our package resolves its type: the released `auto_map` names code that is not
    shipped)."""
    from transformers import AutoTokenizer

    require(src / "tokenizer_config.json", "the tokenizer config")
    if not (src / "tokenizer.json").is_file() and not (src / "tokenizer.model").is_file():
        raise MissingFileError(f"{src / 'tokenizer.json'} is missing: the tokenizer.")
    return AutoTokenizer.from_pretrained(src, trust_remote_code=False)


def write_processor(src: Path, out: Path, config: LLaDAUniConfig, include_remote_code: bool = True) -> None:
    """Tokenizer files, `preprocessor_config.json` and `processor_config.json`, through the processor's own loader
    of the released layout."""
    from transformers_llada_uni.processing_llada_uni import LLaDAUniProcessor

    released = LLaDAUniProcessor.from_pretrained(src, trust_remote_code=False)
    for option in _LOADING_OPTIONS:
        released.tokenizer.init_kwargs.pop(option, None)
    processor = LLaDAUniProcessor(
        image_processor=released.image_processor,
        tokenizer=released.tokenizer,
        image_token_offset=config.image_token_offset,
        image_codebook_size=config.image_codebook_size,
    )
    processor.save_pretrained(out)
    # transformers 5 nests the image processor in processor_config.json; the separate file serves tools (and
    # AutoImageProcessor of older versions) that look for preprocessor_config.json.
    processor.image_processor.save_pretrained(out)
    if not include_remote_code:
        strip_remote_code(out)


def verify_processor(out: Path, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The converted tokenizer gives the released one's ids (special tokens and non-ASCII text included)."""
    from transformers import AutoProcessor

    problems = []
    converted = getattr(AutoProcessor.from_pretrained(out), "tokenizer", None)
    specials = [t for t in ("<|mask|>", "<|image|>", "<boi>", "<IMAGE0>") if t in tokenizer.get_vocab()]
    text = "A red fox in the snow. " + " ".join(specials) + " Zürich 東京 123"
    before = tokenizer(text, add_special_tokens=False)["input_ids"]
    after = converted(text, add_special_tokens=False)["input_ids"]
    if before != after:
        problems.append(f"tokenizer: {text!r} -> {after} after conversion, {before} before.")
    for attr in ("mask_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, attr) != getattr(converted, attr):
            problems.append(f"tokenizer: {attr} {getattr(converted, attr)} after conversion, "
                            f"{getattr(tokenizer, attr)} before.")
    return problems
