# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Everything this project knows about the released LLaDA2.0-Uni folder (`inclusionAI/LLaDA2.0-Uni`) and the names
of the converted layout: folder and file names, which layout a folder is in, the released decoder's config fix and
key rename, and the released -> converted backbone config.

Released layout::

    config.json                        backbone config, model_type "llada2_moe" (no mask id; auto_map to code that
                                       is not shipped)
    model-0000i-of-0000N.safetensors   backbone weights (+ model.safetensors.index.json)
    tokenizer.json, tokenizer_config.json, chat_template.jinja
    image_tokenizer/                   GLM-Image config.json, preprocessor_config.json, image_tokenizer.safetensors,
                                       sigvq_embedding.pt (the decoder's code embedding, a torch.save state dict)
    decoder/, decoder-turbo/           Z-Image DiT: config.json (wrong cap_feat_dim and axes_lens) and
                                       decoder_model.safetensors or model.safetensors (`semantic_embedder.*` keys)
    vae/                               diffusers AutoencoderKL folder, shared by both decoders

The converted layout keeps the top level (config.json with model_type "llada_uni"), `image_tokenizer/` and the
decoder folder names, each decoder a diffusers pipeline folder (see `llada-uni convert --help`).

The diffusers pipelines, the converter and the command line read these names and rules from here only.
"""

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

# The image tokenizer's released weight file is named where its config reads it; re-exported with the other names.
from .configuration_llada_uni_image_tokenizer import (  # noqa: F401
    RELEASED_WEIGHTS_NAME as RELEASED_IMAGE_TOKENIZER_WEIGHTS_NAME,
)
from .prompting_llada_uni import get_special_token_ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .configuration_llada_uni import LLaDAUniConfig


CONFIG_NAME = "config.json"
RELEASED_MODEL_TYPE = "llada2_moe"
CONVERTED_MODEL_TYPE = "llada_uni"
BACKBONE_INDEX_NAME = "model.safetensors.index.json"
BACKBONE_WEIGHTS_NAME = "model.safetensors"

IMAGE_TOKENIZER_DIR = "image_tokenizer"
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
PROCESSOR_CONFIG_NAME = "processor_config.json"
SIGVQ_FILE = "sigvq_embedding.pt"

VAE_DIR = "vae"
# Decoder kind -> folder name, in the released and in the converted layout.
DECODER_DIRS = {"normal": "decoder", "turbo": "decoder-turbo"}
# Both released names occur ("decoder/" has the older one); the diffusers name is accepted as well.
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
RELEASED_DECODER_WEIGHTS_NAMES = ("decoder_model.safetensors", "model.safetensors", DIFFUSERS_WEIGHTS_NAME)
# The released decoder config files carry Z-Image's text-to-image values; the weights were trained with these.
RELEASED_AXES_LENS = (32768, 1024, 1024)
_RELEASED_CAPTION_PREFIX = "semantic_embedder."
_DIFFUSERS_CAPTION_PREFIX = "cap_embedder."

__all__ = [
    "CheckpointError",
    "MissingFileError",
    "read_json",
    "detect_layout",
    "released_decoder_dir",
    "find_decoder_weights",
    "corrected_transformer_config",
    "rename_transformer_key",
    "released_sigvq_path",
    "read_sigvq_state_dict",
    "released_image_processor_dir",
    "build_llada_config",
]


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be read; the message names the file and what is wrong."""


class MissingFileError(CheckpointError, FileNotFoundError):
    """A file the layout needs is not there; the message names it and what it holds."""


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from `path`; a missing, unreadable or malformed file is a `CheckpointError` naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise MissingFileError(f"{path} is missing.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}.")
    return data


def detect_layout(path: str | os.PathLike) -> str:
    """`"converted"` or `"released"`, from the backbone config's model type.

    Args:
        path: a LLaDA2.0-Uni folder.
    """
    config_path = Path(path) / CONFIG_NAME
    if not config_path.is_file():
        raise MissingFileError(f"{path} is not a LLaDA2.0-Uni folder: it has no {CONFIG_NAME}.")
    model_type = read_json(config_path).get("model_type")
    if model_type == CONVERTED_MODEL_TYPE:
        return "converted"
    if model_type == RELEASED_MODEL_TYPE:
        return "released"
    raise CheckpointError(
        f"{config_path}: model_type {model_type!r} is neither {CONVERTED_MODEL_TYPE!r} (converted) nor "
        f"{RELEASED_MODEL_TYPE!r} (released)."
    )


def released_decoder_dir(root: str | os.PathLike, turbo: bool) -> Path:
    """The released folder's 50-step (`turbo=False`) or distilled 8-step decoder folder."""
    return Path(root) / DECODER_DIRS["turbo" if turbo else "normal"]


def find_decoder_weights(folder: str | os.PathLike) -> list[Path]:
    """The safetensors files of a released decoder folder: those of a `*.safetensors.index.json`, else the one file
    under a known name, else the folder's only `.safetensors` file."""
    folder = Path(folder)
    for index_path in sorted(folder.glob("*.safetensors.index.json")):
        weight_map = read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index_path}: no `weight_map`.")
        return [folder / name for name in sorted(set(weight_map.values()))]
    for name in RELEASED_DECODER_WEIGHTS_NAMES:
        if (folder / name).is_file():
            return [folder / name]
    found = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(found) == 1:
        return [folder / found[0]]
    raise MissingFileError(
        f"No decoder weights in {folder}: expected one of {', '.join(RELEASED_DECODER_WEIGHTS_NAMES)} or a "
        f"`*.safetensors.index.json`, found {', '.join(found) or 'no .safetensors file'}."
    )


def corrected_transformer_config(released: dict, sigvq_width: int) -> dict:
    """The released DiT config with what its weights need (the original code set both at load time): `cap_feat_dim`
    is the SigVQ width, `axes_lens` the released RoPE lengths. Bookkeeping keys (`_class_name`, ...) are dropped.

    Args:
        released: the released `decoder*/config.json` as a dict.
        sigvq_width: the SigVQ embedding width (`prior_token_embedding.weight.shape[1]`).
    """
    config = {k: v for k, v in released.items() if not k.startswith("_")}
    config["cap_feat_dim"] = int(sigvq_width)
    config["axes_lens"] = list(RELEASED_AXES_LENS)
    return config


def rename_transformer_key(name: str) -> str:
    """A released DiT weight name as diffusers' `ZImageTransformer2DModel` calls it (`semantic_embedder.*` ->
    `cap_embedder.*`)."""
    if name.startswith(_RELEASED_CAPTION_PREFIX):
        return _DIFFUSERS_CAPTION_PREFIX + name[len(_RELEASED_CAPTION_PREFIX):]
    return name


def released_sigvq_path(root: str | os.PathLike) -> Path:
    """The released folder's SigVQ code embedding (`image_tokenizer/sigvq_embedding.pt`)."""
    return Path(root) / IMAGE_TOKENIZER_DIR / SIGVQ_FILE


def read_sigvq_state_dict(root: str | os.PathLike, mmap: bool = False) -> dict:
    """The released `image_tokenizer/sigvq_embedding.pt` state dict, read with `torch.load(weights_only=True)` (no
    code runs). A missing, truncated or foreign file is a `CheckpointError` naming it.

    Args:
        root: the released folder.
        mmap: map the file instead of reading it (a converter streams the tensors out one at a time).
    """
    import torch

    path = released_sigvq_path(root)
    if not path.is_file():
        raise MissingFileError(f"{path} is missing: the decoder's SigVQ code embedding.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # a damaged zip raises RuntimeError, OSError, EOFError, pickle errors, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable torch state dict ({reason}); the file is truncated or damaged, download it again."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}.")
    return state


def released_image_processor_dir(root: str | os.PathLike) -> Path | None:
    """`root/image_tokenizer` when `root` is a released folder for the processor (the GLM-Image style
    `preprocessor_config.json` lives there and the top level has neither processor file), else None."""
    root = Path(root)
    if not root.is_dir() or any((root / name).is_file() for name in (PROCESSOR_CONFIG_NAME, PREPROCESSOR_CONFIG_NAME)):
        return None
    folder = root / IMAGE_TOKENIZER_DIR
    return folder if (folder / PREPROCESSOR_CONFIG_NAME).is_file() else None


# Released config.json keys that describe the original remote code, not the model.
_RELEASED_ONLY_KEYS = ("auto_map", "architectures", "model_type", "transformers_version", "torch_dtype")


def build_llada_config(released_config: dict, tokenizer: "PreTrainedTokenizerBase", image_codebook_size: int | None,
                       source: str | os.PathLike) -> "LLaDAUniConfig":
    """The converted `LLaDAUniConfig`: every released field, plus the special ids the model needs, resolved by
    `get_special_token_ids` from the released config and the tokenizer, and checked against each other.

    Args:
        released_config: the released `config.json` as a dict.
        tokenizer: the released tokenizer.
        image_codebook_size: codes of the image tokenizer (None: `vocab_size - image_token_offset`).
        source: the released folder (named in errors).
    """
    from .configuration_llada_uni import LLaDAUniConfig

    config_path = Path(source) / CONFIG_NAME
    fields = {k: v for k, v in released_config.items() if k not in _RELEASED_ONLY_KEYS}
    if "torch_dtype" in released_config and "dtype" not in fields:
        fields["dtype"] = released_config["torch_dtype"]
    # The ids generation resolves the same way (config first, then the tokenizer), then checked against each other.
    stated = SimpleNamespace(
        image_token_offset=released_config.get("image_token_offset"),
        image_codebook_size=image_codebook_size,
        vocab_size=released_config.get("vocab_size"),
    )
    try:
        ids = get_special_token_ids(tokenizer, stated)
    except ValueError as err:
        raise CheckpointError(f"{source}: {err}") from None
    offset, codebook = ids.image_token_offset, ids.image_codebook_size
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids.eos_token_id
    if released_config.get("pad_token_id", pad_id) != pad_id:
        raise CheckpointError(
            f"{config_path}: pad_token_id {released_config['pad_token_id']} but the tokenizer's pad token "
            f"{tokenizer.pad_token!r} is id {pad_id}."
        )
    vocab_size = released_config.get("vocab_size")
    if vocab_size is not None and offset + codebook > vocab_size:
        raise CheckpointError(
            f"{config_path}: image_token_offset {offset} + image codebook size {codebook} exceeds vocab_size "
            f"{vocab_size}."
        )
    # Where the tokenizer holds the image range, its first and last code tokens sit at the ids the config implies.
    for code in (0, codebook - 1):
        token_id = offset + code
        if token_id < len(tokenizer) and tokenizer.convert_ids_to_tokens(token_id) != f"<IMAGE{code}>":
            raise CheckpointError(
                f"{config_path}: image_token_offset {offset} and codebook size {codebook} put <IMAGE{code}> at id "
                f"{token_id}, but the tokenizer's id {token_id} is {tokenizer.convert_ids_to_tokens(token_id)!r}."
            )
    fields.update(
        mask_token_id=ids.mask_token_id,
        eos_token_id=ids.eos_token_id,
        pad_token_id=pad_id,
        image_token_offset=offset,
        image_codebook_size=codebook,
    )
    try:
        return LLaDAUniConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: {err}") from None
