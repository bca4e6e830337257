# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Released LLaDA2.0-Uni layout -> converted layout where every part loads with `from_pretrained`.

Converted layout::

    DST/
      config.json                 LLaDAUniConfig (model_type "llada_uni"), ids read from the tokenizer, auto_map
      generation_config.json      LLaDAUniGenerationConfig
      model-0000i-of-0000N.safetensors, model.safetensors.index.json
                                  backbone weights, released per-expert key layout, same shards as the release
      configuration_llada_uni.py, modeling_llada_uni.py, ...
                                  code files for `trust_remote_code=True` without this package
      tokenizer.json, tokenizer_config.json, chat_template.jinja
      preprocessor_config.json    LLaDAUniImageProcessor
      processor_config.json       LLaDAUniProcessor
      model_index.json, pipeline_llada_uni.py, ...
                                  the end-to-end diffusers pipeline over this folder, and its code
      README.md                   model card: what this is, how to load it, the source's license and citation
      image_tokenizer/            the SigLIP-VQ image tokenizer model (config.json + model.safetensors)
      decoder/, decoder-turbo/    LLaDAUniDecoderPipeline folders (model_index.json with the pipeline's code next to
                                  it; transformer/ = diffusers' ZImageTransformer2DModel with the corrected
                                  cap_feat_dim / axes_lens and cap_embedder.* keys; vae/; vq_embedder/ = the SigVQ
                                  embedding as safetensors; scheduler/; README.md)

Every tensor is read with `safe_open` and written on its own (see `safetensors_stream`), into a hidden partial folder
next to DST that is moved to DST only after the whole conversion (and its verification) succeeded; the run holds a
lock on DST throughout, and an existing DST is refused unless `--overwrite` is given, up front and at the final move.
Verification (on by default) compares every written weight with its source bit for bit, then loads each part with
`from_pretrained` and compares its outputs with the released part's on random inputs (a backbone larger than the
largest source file runs at reduced depth there, so verification stays within about one shard of memory).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers_llada_uni.io_utils_llada_uni import DirectoryTransaction
from transformers_llada_uni.released_layout_llada_uni import (
    CONFIG_NAME,
    CONVERTED_MODEL_TYPE,
    DECODER_DIRS,
    IMAGE_TOKENIZER_DIR,
    RELEASED_MODEL_TYPE,
    CheckpointError,
    read_json,
)

from .backbone import BackbonePlan, inspect_backbone, verify_backbone, write_backbone
from .decoder import DecoderPlan, inspect_decoder, verify_decoder, write_decoder
from .image_tokenizer import ImageTokenizerPlan, inspect_image_tokenizer, verify_image_tokenizer, write_image_tokenizer
from .processor import load_tokenizer, verify_processor, write_processor
from .verification import VerificationError, release_memory, verify_written
from .weights import require


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype name (or dtype) as the converter writes weights; None or "auto" keeps the source dtypes."""
    if name is None or name == "auto":
        return None
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise TypeError(f"dtype {name} is not supported; allowed: {', '.join(DTYPES)} (or 'auto').")
        return name
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not supported; allowed: 'auto', {', '.join(map(repr, DTYPES))}.")
    return DTYPES[name]


@dataclass
class ReleasedCheckpoint:
    """Everything read from a released folder before anything is written."""

    src: Path
    tokenizer: object
    backbone: BackbonePlan
    image_tokenizer: ImageTokenizerPlan
    decoders: dict[str, DecoderPlan] = field(default_factory=dict)  # folder name -> plan

    @property
    def largest_source_file(self) -> int:
        plans = [self.backbone.weights, self.image_tokenizer.weights]
        for decoder in self.decoders.values():
            plans += [decoder.transformer, decoder.vae]
        return max(plan.largest_source_file for plan in plans)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in (self.backbone.weights, self.image_tokenizer.weights, *self.decoders.values()))


def inspect_released(src: str | os.PathLike) -> ReleasedCheckpoint:
    """Read and check every header, config and the tokenizer of a released folder. Loads no weights."""
    import transformers_llada_uni  # noqa: F401  (registers the released model type)

    src = Path(src)
    if not src.is_dir():
        raise CheckpointError(f"{src} is not a folder.")
    released_config = read_json(require(src / CONFIG_NAME, "the backbone config"))
    if released_config.get("model_type") not in (RELEASED_MODEL_TYPE, CONVERTED_MODEL_TYPE):
        raise CheckpointError(
            f"{src / CONFIG_NAME}: model_type {released_config.get('model_type')!r}, expected {RELEASED_MODEL_TYPE!r} "
            "(the released LLaDA2.0-Uni)."
        )
    tokenizer = load_tokenizer(src)
    image_tokenizer = inspect_image_tokenizer(src)
    backbone = inspect_backbone(src, released_config, tokenizer, image_tokenizer.codebook_size)
    decoders = {}
    for kind, folder in DECODER_DIRS.items():
        if (src / folder).is_dir():
            decoders[folder] = inspect_decoder(src, turbo=kind == "turbo")
    if DECODER_DIRS["normal"] not in decoders:
        require(src / DECODER_DIRS["normal"] / CONFIG_NAME, "the image decoder (DiT weights and config)")
    return ReleasedCheckpoint(src, tokenizer, backbone, image_tokenizer, decoders)


def verify_conversion(ckpt: ReleasedCheckpoint, out: Path, dtype: torch.dtype | None = None,
                      device: str | torch.device = "cpu", seed: int = 0) -> list[str]:
    """Every difference between the source and the converted folder `out`, as readable lines (empty: identical)."""
    generator = torch.Generator().manual_seed(seed)
    problems = verify_written(ckpt.backbone.output_plan, out, dtype, "backbone weights")
    problems += verify_written(
        ckpt.image_tokenizer.weights, out / IMAGE_TOKENIZER_DIR, dtype, "image tokenizer weights"
    )
    for folder, plan in ckpt.decoders.items():
        problems += verify_written(plan.transformer, out / folder / "transformer", dtype, f"{folder} DiT weights")
        problems += verify_written(plan.vae, out / folder / "vae", dtype, f"{folder} VAE weights")
    # A backbone larger than the largest source file is run at reduced depth (see verify_backbone).
    config = ckpt.backbone.config
    num_layers = None
    if ckpt.backbone.weights.nbytes > ckpt.largest_source_file:
        num_layers = min(config.num_hidden_layers, config.first_k_dense_replace + 1)
    problems += verify_backbone(ckpt.src, out, config, dtype, device, generator, num_layers)
    problems += verify_processor(out, ckpt.tokenizer)
    problems += verify_image_tokenizer(ckpt.image_tokenizer, out / IMAGE_TOKENIZER_DIR, dtype, device, generator)
    release_memory()
    for folder, plan in ckpt.decoders.items():
        problems += verify_decoder(plan, out / folder, dtype, device, generator)
        release_memory()
    return problems


def write_end_to_end_index(ckpt: ReleasedCheckpoint, out: Path) -> None:
    """The top-level `model_index.json` and model card, and the source's license files next to them."""
    from diffusers_llada_uni import LLaDAUniDecoderPipeline, LLaDAUniTextToImagePipeline
    from diffusers_llada_uni.saving_llada_uni import write_end_to_end_files
    from transformers_llada_uni import LLaDAUniForConditionalGeneration, LLaDAUniImageVQModel, LLaDAUniProcessor

    for path in sorted(ckpt.src.iterdir()):
        if path.is_file() and path.name.upper().startswith(("LICENSE", "NOTICE")):
            shutil.copyfile(path, out / path.name)
    decoders = {kind: LLaDAUniDecoderPipeline if name in ckpt.decoders else None for kind, name in DECODER_DIRS.items()}
    components = {
        "model": LLaDAUniForConditionalGeneration,
        "processor": LLaDAUniProcessor,
        "image_tokenizer": LLaDAUniImageVQModel,
        "decoder": decoders["normal"],
        "turbo_decoder": decoders["turbo"],
    }
    write_end_to_end_files(out, LLaDAUniTextToImagePipeline, components, source=ckpt.src)


def check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    """What can be refused before any work: DST inside SRC or the reverse, DST being (or holding) the working folder,
    and an existing DST without `overwrite`."""
    src_r, dst_r = src.resolve(), dst.resolve()
    if src_r == dst_r or src_r in dst_r.parents or dst_r in src_r.parents:
        raise ValueError(f"DST ({dst}) must be outside SRC ({src}) and must not contain it.")
    cwd = Path.cwd().resolve()
    if dst_r == cwd or dst_r in cwd.parents:
        raise ValueError(
            f"DST ({dst}) is the working folder or contains it; replacing it would pull the folder away from under "
            "this shell. Give a DST outside the working folder."
        )
    if (dst.exists() or dst.is_symlink()) and not overwrite:
        raise FileExistsError(f"{dst} already exists; pass --overwrite (overwrite=True) to replace it.")


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    overwrite: bool = False,
    verify: bool = True,
    dtype: str | torch.dtype | None = None,
    include_remote_code: bool = True,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Convert the released folder `src` into the converted layout at `dst` (see the module docstring).

    Nothing is written until every input file has been checked; the output is built in a hidden sibling folder and
    moved to `dst` only after it was written (and, with `verify`, loaded back and compared). On any error or
    interruption `dst` is left as it was.

    Args:
        src: the released folder.
        dst: the folder to create.
        overwrite: replace an existing `dst`.
        verify: compare every written weight with its source and every converted part's outputs with the source's.
        dtype: dtype of the written floating-point weights (`"auto"`/None: the source dtypes).
        include_remote_code: copy the code files for `trust_remote_code=True` into `dst`.
        device: where the verification runs.
        seed: seed of the verification's random inputs.
        progress: show a progress bar.
        log: receives the progress messages.
    """
    from tqdm.auto import tqdm

    src, dst = Path(src), Path(dst)
    dtype = parse_dtype(dtype)
    if not src.exists():
        raise FileNotFoundError(f"SRC {src} does not exist.")
    check_destination(src, dst, overwrite)
    log(f"Checking {src} ...")
    ckpt = inspect_released(src)

    with DirectoryTransaction(dst, overwrite=overwrite, log=log) as transaction:
        tmp = transaction.path
        with tqdm(total=ckpt.nbytes, unit="B", unit_scale=True, desc="Converting", disable=not progress) as bar:
            write_backbone(ckpt.backbone, tmp, dtype, include_remote_code, bar)
            write_processor(src, tmp, ckpt.backbone.config, include_remote_code)
            write_image_tokenizer(ckpt.image_tokenizer, tmp / IMAGE_TOKENIZER_DIR, dtype, bar, include_remote_code)
            for folder, plan in ckpt.decoders.items():
                write_decoder(plan, tmp / folder, dtype, bar, include_remote_code)
            write_end_to_end_index(ckpt, tmp)
        if verify:
            log("Verifying: loading each converted part and comparing it with the source on random inputs ...")
            problems = verify_conversion(ckpt, tmp, dtype=dtype, device=device, seed=seed)
            if problems:
                raise VerificationError(
                    "the converted checkpoint does not reproduce the source; nothing was written to "
                    f"{dst}:\n  " + "\n  ".join(problems)
                )
            log("Verified: every part matches the source.")
        transaction.commit()
    log(f"Converted {src} -> {dst}")
    return dst
