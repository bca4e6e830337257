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
      image_tokenizer/            the SigLIP-VQ image tokenizer model (config.json + model.safetensors)
      decoder/, decoder-turbo/    LLaDAUniDecoderPipeline folders (model_index.json; transformer/ = diffusers'
                                  ZImageTransformer2DModel with the corrected cap_feat_dim / axes_lens and
                                  cap_embedder.* keys; vae/; vq_embedder/ = the SigVQ embedding as safetensors;
                                  scheduler/)

Every tensor is read with `safe_open` and written on its own (see `safetensors_stream`), into a hidden temporary
folder next to DST that is renamed to DST only after the whole conversion (and its verification) succeeded.
Verification (on by default) compares every written weight with its source bit for bit, then loads each part with
`from_pretrained` and compares its outputs with the released part's on random inputs (a backbone larger than the
largest source file runs at reduced depth there, so verification stays within about one shard of memory).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers_llada_uni.io_utils_llada_uni import replace_directory

from .safetensors_stream import (
    CheckpointError,
    ShardReader,
    TensorInfo,
    read_header,
    read_tensor,
    write_streaming,
)


BACKBONE_INDEX = "model.safetensors.index.json"
BACKBONE_SINGLE = "model.safetensors"
IMAGE_TOKENIZER_DIR = "image_tokenizer"
SIGVQ_FILE = "sigvq_embedding.pt"
VAE_DIR = "vae"
# Released decoder folders -> whether they hold the distilled (turbo) weights. The folder name is kept.
DECODER_DIRS = {"decoder": False, "decoder-turbo": True}

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(name: str | None) -> torch.dtype | None:
    if name is None or name == "auto":
        return None
    if name not in _DTYPES:
        raise ValueError(f"dtype {name!r} is not supported; allowed: 'auto', {', '.join(map(repr, _DTYPES))}.")
    return _DTYPES[name]


# --------------------------------------------------------------------------------------------------------------
# Inspection of the source: everything that can be wrong is found before anything is written.
# --------------------------------------------------------------------------------------------------------------


@dataclass
class WeightPlan:
    """Where each output file's tensors come from: {output file: [(output name, source TensorInfo)]}."""

    files: dict[str, list[tuple[str, TensorInfo]]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(info.nbytes for entries in self.files.values() for _, info in entries)

    @property
    def largest_source_file(self) -> int:
        paths = {info.path for entries in self.files.values() for _, info in entries}
        return max((os.path.getsize(p) for p in paths), default=0)


@dataclass
class ReleasedCheckpoint:
    src: Path
    released_config: dict
    llada_config: object  # LLaDAUniConfig
    tokenizer: object
    backbone: WeightPlan
    image_tokenizer: object  # ImageTokenizerPlan
    decoders: dict = field(default_factory=dict)  # folder name -> DecoderPlan

    @property
    def backbone_output_plan(self) -> WeightPlan:
        """The backbone's files as written: one `model.safetensors` for an unsharded release, else the shards."""
        if len(self.backbone.files) == 1:
            return WeightPlan({BACKBONE_SINGLE: next(iter(self.backbone.files.values()))})
        return self.backbone

    @property
    def largest_source_file(self) -> int:
        plans = [self.backbone, self.image_tokenizer.weights]
        for decoder in self.decoders.values():
            plans += [decoder.transformer, decoder.vae]
        return max(plan.largest_source_file for plan in plans)

    @property
    def nbytes(self) -> int:
        total = self.backbone.nbytes + self.image_tokenizer.weights.nbytes
        for plan in self.decoders.values():
            total += plan.nbytes
        return total


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {what}. Is the source a released LLaDA2.0-Uni folder?")
    return path


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object.")
    return data


def check_shapes(found: dict[str, TensorInfo], expected: dict[str, tuple[int, ...]], where: str) -> None:
    """Every expected tensor present with its expected shape, nothing unexpected: else a `CheckpointError`."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{name}: shape {list(found[name].shape)} in {found[name].path}, expected {list(shape)}"
        for name, shape in expected.items()
        if name in found and tuple(found[name].shape) != tuple(shape)
    ]
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} weight(s) with the wrong shape:\n  " + "\n  ".join(wrong[:20]))
    if missing:
        problems.append(f"{len(missing)} weight(s) missing, e.g. {missing[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weight(s), e.g. {unexpected[:5]}")
    if problems:
        raise CheckpointError(f"{where}: the weights do not match the config:\n" + "\n".join(problems))


def _read_sharded(folder: Path, index_name: str, single_name: str, what: str) -> dict[str, TensorInfo]:
    """Headers of a (possibly sharded) safetensors checkpoint, checked against its index."""
    index_path = folder / index_name
    if index_path.is_file():
        weight_map = _read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index_path}: no `weight_map`.")
        infos = {}
        for shard in sorted(set(weight_map.values())):
            shard_infos = read_header(_require(folder / shard, f"a {what} shard listed in {index_name}"))
            for name, info in shard_infos.items():
                if weight_map.get(name) == shard:
                    infos[name] = info
        absent = [name for name, shard in weight_map.items() if name not in infos]
        if absent:
            raise CheckpointError(
                f"{index_path} lists {len(absent)} tensor(s) that their shard does not hold, e.g. "
                f"{absent[0]!r} in {weight_map[absent[0]]}."
            )
        return infos
    return read_header(_require(folder / single_name, f"the {what} weights (or {index_name})"))


def expected_backbone_shapes(config) -> dict[str, tuple[int, ...]]:
    """Released key -> shape for a backbone config, derived from the model itself (built on the meta device).

    The model holds the routed experts fused (`experts.gate_up_proj` [E, 2I, H], `experts.down_proj` [E, H, I]); the
    release stores one Linear per expert, which is also the layout the converted checkpoint keeps (the model's
    registered conversion mapping reads and writes it).
    """
    from transformers_llada_uni import LLaDAUniForConditionalGeneration

    with torch.device("meta"):
        model = LLaDAUniForConditionalGeneration._from_config(config)
    shapes = {}
    for name, tensor in model.state_dict().items():
        match = re.fullmatch(r"(.*\.mlp\.experts)\.(gate_up_proj|down_proj)", name)
        if match is None:
            shapes[name] = tuple(tensor.shape)
            continue
        prefix, kind = match.groups()
        num_experts, rows, cols = tensor.shape
        for e in range(num_experts):
            if kind == "gate_up_proj":
                shapes[f"{prefix}.{e}.gate_proj.weight"] = (rows // 2, cols)
                shapes[f"{prefix}.{e}.up_proj.weight"] = (rows // 2, cols)
            else:
                shapes[f"{prefix}.{e}.down_proj.weight"] = (rows, cols)
    return shapes


def _token_id(tokenizer, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return token_id


def build_llada_config(released_config: dict, tokenizer, image_codebook_size: int | None, src: Path):
    """The converted `LLaDAUniConfig`: the released fields, plus the ids the model needs read from the tokenizer."""
    from transformers_llada_uni import LLaDAUniConfig

    fields = {
        k: v
        for k, v in released_config.items()
        if k not in ("auto_map", "architectures", "model_type", "transformers_version", "torch_dtype")
    }
    if "torch_dtype" in released_config and "dtype" not in fields:
        fields["dtype"] = released_config["torch_dtype"]

    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise CheckpointError(f"{src}: the tokenizer defines no mask token (`mask_token` in tokenizer_config.json).")
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise CheckpointError(f"{src}: the tokenizer defines no EOS token (`eos_token` in tokenizer_config.json).")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if "pad_token_id" in released_config and released_config["pad_token_id"] != pad_id:
        raise CheckpointError(
            f"{src}: config.json has pad_token_id {released_config['pad_token_id']} but the tokenizer's pad token "
            f"{tokenizer.pad_token!r} is id {pad_id}."
        )
    offset = released_config.get("image_token_offset")
    image0 = _token_id(tokenizer, "<IMAGE0>")
    if offset is None:
        offset = image0
    if offset is None:
        raise CheckpointError(f"{src}: neither config.json (`image_token_offset`) nor the tokenizer (<IMAGE0>) gives "
                              "the id of image code 0.")
    if image0 is not None and image0 != offset:
        raise CheckpointError(
            f"{src}: config.json has image_token_offset {offset} but the tokenizer's <IMAGE0> is id {image0}."
        )
    vocab_size = released_config.get("vocab_size")
    if image_codebook_size is None:
        image_codebook_size = vocab_size - offset
    if vocab_size is not None and offset + image_codebook_size > vocab_size:
        raise CheckpointError(
            f"{src}: image_token_offset {offset} + image codebook size {image_codebook_size} exceeds vocab_size "
            f"{vocab_size}."
        )
    last_code = _token_id(tokenizer, f"<IMAGE{image_codebook_size - 1}>")
    if image0 is not None and last_code is not None and last_code != offset + image_codebook_size - 1:
        raise CheckpointError(
            f"{src}: the tokenizer's <IMAGE{image_codebook_size - 1}> is id {last_code}, expected "
            f"{offset + image_codebook_size - 1} (image_token_offset + codebook size - 1)."
        )
    fields.update(
        mask_token_id=mask_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        image_token_offset=offset,
        image_codebook_size=image_codebook_size,
    )
    try:
        config = LLaDAUniConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{src / 'config.json'}: {err}") from None
    return config


def load_tokenizer(src: Path):
    from transformers import AutoTokenizer

    _require(src / "tokenizer_config.json", "the tokenizer config")
    if not (src / "tokenizer.json").is_file() and not any(src.glob("tokenizer.model")):
        raise CheckpointError(f"{src / 'tokenizer.json'} is missing: the tokenizer.")
    # The released config.json's auto_map points at remote code that is not there; our package resolves the type.
    return AutoTokenizer.from_pretrained(src, trust_remote_code=False)


def inspect_released(src: str | os.PathLike) -> ReleasedCheckpoint:
    """Read and check every header, config and the tokenizer of a released folder. Loads no weights."""
    import transformers_llada_uni  # noqa: F401  (registers the released model type)

    from .convert_decoder import inspect_decoder
    from .convert_image_tokenizer import inspect_image_tokenizer

    src = Path(src)
    if not src.is_dir():
        raise CheckpointError(f"{src} is not a folder.")
    released_config = _read_json(_require(src / "config.json", "the backbone config"))
    if released_config.get("model_type") not in ("llada2_moe", "llada_uni"):
        raise CheckpointError(
            f"{src / 'config.json'}: model_type {released_config.get('model_type')!r}, expected 'llada2_moe' (the "
            "released LLaDA2.0-Uni)."
        )
    tokenizer = load_tokenizer(src)

    image_tokenizer = inspect_image_tokenizer(src)
    codebook = image_tokenizer.codebook_size
    config = build_llada_config(released_config, tokenizer, codebook, src)

    infos = _read_sharded(src, BACKBONE_INDEX, BACKBONE_SINGLE, "backbone")
    check_shapes(infos, expected_backbone_shapes(config), f"{src} (backbone)")
    backbone = WeightPlan()
    for name, info in infos.items():
        backbone.files.setdefault(Path(info.path).name, []).append((name, info))

    decoders = {}
    for folder, turbo in DECODER_DIRS.items():
        if (src / folder).is_dir():
            decoders[folder] = inspect_decoder(src, folder, turbo)
    if "decoder" not in decoders:
        raise CheckpointError(f"{src / 'decoder'} is missing: the image decoder (DiT weights and config).")
    return ReleasedCheckpoint(src, released_config, config, tokenizer, backbone, image_tokenizer, decoders)


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def _keep_in_float32(name: str) -> bool:
    # The router bias decides expert choice by small differences: the model keeps it in float32 whatever the dtype.
    return name.endswith("expert_bias")


def target_dtype(name: str, source: torch.dtype, requested: torch.dtype | None) -> torch.dtype:
    if requested is not None and source.is_floating_point and not _keep_in_float32(name):
        return requested
    return source


def write_weights(
    plan: WeightPlan,
    out_dir: Path,
    dtype: torch.dtype | None = None,
    index_name: str | None = None,
    progress=None,
) -> None:
    """Write the planned files tensor by tensor; with `index_name`, also the `weight_map` index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    total = 0
    with ShardReader() as reader:
        for file_name, entries in plan.files.items():
            # Tensors are fetched in source order so each source shard is mapped once.
            entries = sorted(entries, key=lambda e: (e[1].path, e[0]))
            specs = []
            for out_name, info in entries:
                target = target_dtype(out_name, info.dtype, dtype)

                def fetch(info=info, target=target):
                    return reader.get(info.path, info.name).to(target)

                specs.append((out_name, target, info.shape, fetch))
                weight_map[out_name] = file_name
            total += write_streaming(
                out_dir / file_name,
                specs,
                metadata={"format": "pt"},
                on_tensor=(lambda n: progress.update(n)) if progress is not None else None,
            )
    if index_name is not None:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        with open(out_dir / index_name, "w", encoding="utf-8") as f:
            json.dump(index, f, indent=2)
            f.write("\n")


def _code_files(classes) -> list[Path]:
    """The module files of `classes` and everything they import relatively: what `trust_remote_code` needs."""
    from transformers.dynamic_module_utils import get_relative_import_files

    files = []
    for cls in classes:
        module_file = sys.modules[cls.__module__].__file__
        for path in [module_file, *get_relative_import_files(module_file)]:
            if Path(path) not in files:
                files.append(Path(path))
    return files


def write_backbone(ckpt: ReleasedCheckpoint, out: Path, dtype, include_remote_code: bool, progress) -> None:
    from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration, LLaDAUniModel

    config = ckpt.llada_config
    if dtype is not None:
        config.dtype = dtype
    config.architectures = [LLaDAUniForConditionalGeneration.__name__]
    if include_remote_code:
        classes = {"AutoConfig": LLaDAUniConfig, "AutoModel": LLaDAUniModel,
                   "AutoModelForCausalLM": LLaDAUniForConditionalGeneration}
        config.auto_map = {auto: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}" for auto, cls in classes.items()}
        for path in _code_files(classes.values()):
            shutil.copyfile(path, out / path.name)
    # `save_pretrained` of a config registered for an auto class would copy only its own module; the files are
    # copied above, so the plain JSON is written here.
    config.to_json_file(out / "config.json", use_diff=True)
    plan = ckpt.backbone_output_plan
    single = BACKBONE_SINGLE in plan.files
    write_weights(plan, out, dtype, index_name=None if single else BACKBONE_INDEX, progress=progress)
    generation_config(config).save_pretrained(out)


def generation_config(config):
    from transformers_llada_uni.generation_llada_uni import LLaDAUniGenerationConfig

    return LLaDAUniGenerationConfig.from_model_config(config)


_LOADING_OPTIONS = ("local_files_only", "trust_remote_code", "cache_dir", "force_download", "revision", "token",
                    "_commit_hash", "subfolder")


def write_processor(ckpt: ReleasedCheckpoint, out: Path, include_remote_code: bool = True) -> None:
    """Tokenizer files, `preprocessor_config.json` and `processor_config.json`, through the processor's own loader
    of the released layout (tokenizer at the top, GLM-Image preprocessor config in `image_tokenizer/`)."""
    from transformers_llada_uni.processing_llada_uni import LLaDAUniProcessor

    released = LLaDAUniProcessor.from_pretrained(ckpt.src, trust_remote_code=False)
    # Loading options end up in the tokenizer's init kwargs and would be saved into tokenizer_config.json (e.g.
    # "local_files_only": true when converting offline), where they would apply to every later load.
    for option in _LOADING_OPTIONS:
        released.tokenizer.init_kwargs.pop(option, None)
    config = ckpt.llada_config
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
        _strip_remote_code(out)


def _strip_remote_code(out: Path) -> None:
    """Drop the code files and `auto_map` entries that `save_pretrained` of registered classes adds."""
    for path in out.glob("*.py"):
        path.unlink()
    for path in out.glob("*.json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and "auto_map" in data:
            del data["auto_map"]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")


# --------------------------------------------------------------------------------------------------------------
# The transaction: a hidden sibling folder, renamed to DST at the very end.
# --------------------------------------------------------------------------------------------------------------

_PARTIAL = ".partial-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_dir_for(dst: Path) -> Path:
    return dst.parent / f".{dst.name}{_PARTIAL}{os.getpid()}"


def remove_stale_partials(dst: Path) -> list[Path]:
    """Folders left by a conversion to `dst` that was killed (SIGKILL, power loss): their process is gone."""
    removed = []
    for path in dst.parent.glob(f".{glob.escape(dst.name)}{_PARTIAL}*"):
        suffix = path.name.rsplit(_PARTIAL, 1)[-1]
        if suffix.isdigit() and not _pid_alive(int(suffix)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    src_r, dst_r = src.resolve(), dst.resolve()
    if src_r == dst_r or src_r in dst_r.parents or dst_r in src_r.parents:
        raise ValueError(f"DST ({dst}) must be outside SRC ({src}) and must not contain it.")
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{dst} already exists; pass --overwrite (overwrite=True) to replace it.")


# --------------------------------------------------------------------------------------------------------------
# Verification: load every converted part and compare it with the source on random inputs.
# --------------------------------------------------------------------------------------------------------------


class VerificationError(RuntimeError):
    """The converted folder does not reproduce the source; the message lists every difference."""


def _compare(name: str, reference: torch.Tensor, converted: torch.Tensor, problems: list[str], rtol: float = 0.0):
    """Integers must match exactly; floats within `rtol` of the reference's largest magnitude.

    The same weights loaded through two paths can sit in differently aligned memory, and CPU kernels then sum in
    another order: a few float32 ulps, never the size of a wrong or misplaced weight.
    """
    if reference.shape != converted.shape:
        problems.append(f"{name}: shape {tuple(converted.shape)} after conversion, {tuple(reference.shape)} before.")
        return
    if reference.dtype.is_floating_point:
        reference, converted = reference.float(), converted.float()
        if not (torch.isfinite(reference) == torch.isfinite(converted)).all():
            problems.append(f"{name}: non-finite values differ.")
            return
        diff = (reference - converted).abs().nan_to_num(0.0)
        scale = reference.abs().nan_to_num(0.0).max().clamp_min(1e-12)
        if diff.max() > rtol * scale:
            problems.append(
                f"{name}: outputs differ (max abs diff {diff.max().item():.3g}, {diff.max().item() / scale.item():.3g}"
                f" of the largest value; allowed {rtol:g})."
            )
    elif not torch.equal(reference, converted):
        differing = (reference != converted).sum().item()
        problems.append(f"{name}: {differing} of {reference.numel()} values differ.")


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    # Bit patterns, so NaNs (and -0.0) compare as stored.
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def verify_written(plan: WeightPlan, out_dir: Path, dtype, where: str, limit: int = 20) -> list[str]:
    """Every written tensor equals its source tensor (cast as written) bit for bit, read one at a time from both
    files, so the whole checkpoint is compared in the memory of two tensors."""
    problems = []
    for file_name, entries in plan.files.items():
        path = out_dir / file_name
        try:
            written = read_header(path)
        except (OSError, CheckpointError) as err:
            problems.append(f"{where}: {err}")
            continue
        names = {out_name for out_name, _ in entries}
        if set(written) != names:
            problems.append(f"{where}: {path.name} holds {sorted(set(written) ^ names)[:5]} unlike the plan.")
        for out_name, info in entries:
            if out_name not in written:
                continue
            source = read_tensor(info).to(target_dtype(out_name, info.dtype, dtype))
            if not same_bits(source, read_tensor(written[out_name])):
                problems.append(f"{where}: {out_name} in {path.name} differs from {info.name} in {info.path}.")
                if len(problems) >= limit:
                    return problems
    return problems


def release_memory() -> None:
    """Free the model just compared before the next one loads: only one model is ever held (modules keep
    reference cycles, so dropping the last name is not enough)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def float_tolerance(dtype: torch.dtype | None) -> float:
    return 1e-4 if dtype in (None, torch.float32) else 2e-2


def verify_backbone(src: Path, out: Path, config, dtype, device, generator, num_layers: int | None = None) -> list[str]:
    """Logits of the converted and the released backbone on random ids. `num_layers` truncates both models to their
    first layers (the weights of deeper layers are compared bit for bit by `verify_written` instead), which bounds
    the memory of verifying a checkpoint larger than one shard."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    from transformers_llada_uni import LLaDAUniForConditionalGeneration

    problems = []
    block = min(config.block_length, 8)
    ids = torch.randint(0, config.vocab_size, (2, 3 * block - 2), generator=generator)
    ids[:, -block:] = config.mask_token_id
    attention_mask = torch.ones_like(ids)
    attention_mask[1, :2] = 0
    load = {"dtype": dtype if dtype is not None else "auto"}
    what = "backbone"
    if num_layers is not None and num_layers < config.num_hidden_layers:
        load["num_hidden_layers"] = num_layers
        what = f"backbone (first {num_layers} layers)"

    def run(model):
        model.to(device).eval()
        with torch.no_grad():
            full = model(ids.to(device)).logits.cpu()
            blocked = model(ids.to(device), attention_mask=attention_mask.to(device), block_length=block).logits.cpu()
        return full, blocked

    verbosity = transformers_logging.get_verbosity()
    if "num_hidden_layers" in load:
        # Truncated loads report the deeper layers' weights as unexpected, which is the point here.
        transformers_logging.set_verbosity_error()
    try:
        reference = run(AutoModelForCausalLM.from_pretrained(src, trust_remote_code=False, **load))
        release_memory()
        model = AutoModelForCausalLM.from_pretrained(out, **load)
    finally:
        transformers_logging.set_verbosity(verbosity)
    if not isinstance(model, LLaDAUniForConditionalGeneration):
        problems.append(f"backbone: AutoModelForCausalLM gave {type(model).__name__}, expected "
                        f"{LLaDAUniForConditionalGeneration.__name__}.")
    converted = run(model)
    del model
    release_memory()
    rtol = float_tolerance(dtype)
    _compare(f"{what} logits (no mask)", reference[0], converted[0], problems, rtol)
    _compare(f"{what} logits (block-causal, block {block})", reference[1], converted[1], problems, rtol)
    return problems


def verify_processor(src: Path, out: Path, tokenizer) -> list[str]:
    from transformers import AutoProcessor

    problems = []
    processor = AutoProcessor.from_pretrained(out)
    converted_tokenizer = getattr(processor, "tokenizer", processor)
    specials = [t for t in ("<|mask|>", "<|image|>", "<boi>", "<IMAGE0>") if _token_id(tokenizer, t) is not None]
    text = "A red fox in the snow. " + " ".join(specials) + " Zürich 東京 123"
    before = tokenizer(text, add_special_tokens=False)["input_ids"]
    after = converted_tokenizer(text, add_special_tokens=False)["input_ids"]
    if before != after:
        problems.append(f"tokenizer: {text!r} -> {after} after conversion, {before} before.")
    for attr in ("mask_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, attr) != getattr(converted_tokenizer, attr):
            problems.append(f"tokenizer: {attr} {getattr(converted_tokenizer, attr)} after conversion, "
                            f"{getattr(tokenizer, attr)} before.")
    return problems


def verify_conversion(ckpt: ReleasedCheckpoint, out: Path, dtype=None, device="cpu", seed=0) -> list[str]:
    """Every difference between the source and the converted folder `out`, as readable lines (empty: identical)."""
    from .convert_decoder import verify_decoder
    from .convert_image_tokenizer import verify_image_tokenizer

    generator = torch.Generator().manual_seed(seed)
    problems = verify_written(ckpt.backbone_output_plan, out, dtype, "backbone weights")
    problems += verify_written(ckpt.image_tokenizer.weights, out / IMAGE_TOKENIZER_DIR, dtype, "image tokenizer weights")
    for folder, plan in ckpt.decoders.items():
        problems += verify_written(plan.transformer, out / folder / "transformer", dtype, f"{folder} DiT weights")
        problems += verify_written(plan.vae, out / folder / "vae", dtype, f"{folder} VAE weights")
    # A backbone larger than the largest source file is run at reduced depth (see verify_backbone).
    config = ckpt.llada_config
    num_layers = None
    if ckpt.backbone.nbytes > ckpt.largest_source_file:
        num_layers = min(config.num_hidden_layers, config.first_k_dense_replace + 1)
    problems += verify_backbone(ckpt.src, out, config, dtype, device, generator, num_layers)
    problems += verify_processor(ckpt.src, out, ckpt.tokenizer)
    problems += verify_image_tokenizer(ckpt.image_tokenizer, out / IMAGE_TOKENIZER_DIR, dtype, device, generator)
    release_memory()
    for folder, plan in ckpt.decoders.items():
        problems += verify_decoder(plan, out / folder, dtype, device, generator)
        release_memory()
    return problems


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
    renamed to `dst` only after it was written (and, with `verify`, loaded back and compared). On any error or
    interruption `dst` is left as it was.
    """
    from tqdm.auto import tqdm

    from .convert_decoder import write_decoder
    from .convert_image_tokenizer import write_image_tokenizer

    src, dst = Path(src), Path(dst)
    if isinstance(dtype, str) or dtype is None:
        dtype = parse_dtype(dtype)
    elif dtype not in _DTYPES.values():
        raise TypeError(f"dtype {dtype} is not supported; allowed: {', '.join(_DTYPES)} (or 'auto').")
    if not src.exists():
        raise FileNotFoundError(f"SRC {src} does not exist.")
    check_destination(src, dst, overwrite)
    log(f"Checking {src} ...")
    ckpt = inspect_released(src)

    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_partials(dst):
        log(f"Removed {stale}, left by an interrupted conversion.")
    tmp = _temp_dir_for(dst)
    tmp.mkdir()
    try:
        with tqdm(total=ckpt.nbytes, unit="B", unit_scale=True, desc="Converting", disable=not progress) as bar:
            write_backbone(ckpt, tmp, dtype, include_remote_code, bar)
            write_processor(ckpt, tmp, include_remote_code)
            write_image_tokenizer(ckpt.image_tokenizer, tmp / IMAGE_TOKENIZER_DIR, dtype, bar, include_remote_code)
            for folder, plan in ckpt.decoders.items():
                write_decoder(plan, tmp / folder, dtype, bar)
        if verify:
            log("Verifying: loading each converted part and comparing it with the source on random inputs ...")
            problems = verify_conversion(ckpt, tmp, dtype=dtype, device=device, seed=seed)
            if problems:
                raise VerificationError(
                    "the converted checkpoint does not reproduce the source; nothing was written to "
                    f"{dst}:\n  " + "\n  ".join(problems)
                )
            log("Verified: every part matches the source.")
        replace_directory(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"Converted {src} -> {dst}")
    return dst


# --------------------------------------------------------------------------------------------------------------
# `llada-uni convert` / `python conversion/convert_llada_uni.py`
# --------------------------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .common import add_device_option, add_dtype_option, add_seed_option

    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="SRC DST: the released folder and the folder to create (or --model SRC and DST)")
    parser.add_argument("--model", metavar="PATH", default=None, help="the released folder (same as SRC)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--verify", dest="verify", action="store_true", default=True,
                        help="compare every written weight with its source, load every converted part and compare "
                             "it with the source on random inputs (default)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip the verification")
    parser.add_argument("--no-remote-code", dest="remote_code", action="store_false",
                        help="do not copy the code files for trust_remote_code into DST")
    add_seed_option(parser, help_text="seed of the verification's random inputs")
    add_device_option(parser, help_text="device the verification runs on")
    add_dtype_option(parser, help_text="dtype of the written weights ('auto' keeps the source dtypes)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        usage="llada-uni convert [options] SRC DST",
        help="convert a released LLaDA2.0-Uni folder into the from_pretrained layout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    # A wrong number of paths is a usage error (status 2) like any other argparse error.
    parser.set_defaults(usage_error=parser.error)
    return parser


def _src_dst(args, parser_error) -> tuple[Path, Path]:
    paths = list(args.paths)
    if args.model is not None:
        paths.insert(0, args.model)
    if len(paths) != 2:
        parser_error(f"expected SRC and DST (SRC may be given as --model), got {len(paths)} path(s): {paths}")
    return Path(paths[0]), Path(paths[1])


def run(args) -> int:
    def value_error(message):
        raise ValueError(message)

    src, dst = _src_dst(args, getattr(args, "usage_error", value_error))
    convert(
        src,
        dst,
        overwrite=args.overwrite,
        verify=args.verify,
        dtype=args.dtype,
        include_remote_code=args.remote_code,
        device=args.device,
        seed=args.seed,
        progress=args.progress,
        log=lambda message: print(message, file=sys.stderr),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python conversion/convert_llada_uni.py SRC DST [options]`."""
    parser = configure_parser(argparse.ArgumentParser(
        prog="convert_llada_uni.py", usage="%(prog)s [options] SRC DST", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    _src_dst(args, parser.error)  # a usage error exits with status 2 before any work
    try:
        run(args)
    except KeyboardInterrupt:
        print("convert_llada_uni.py: interrupted; DST left untouched.", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        print(f"convert_llada_uni.py: error: {err}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
