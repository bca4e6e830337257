# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Training checkpoints without pickle: what [`LLaDAUniMaskedDiffusionTrainer`] writes and checks on resume.

A checkpoint folder `checkpoint-STEP/` holds

- the trained weights as safetensors: the PEFT adapter (`adapter_model.safetensors`, loadable with
  `PeftModel.from_pretrained`) or, for full fine-tuning, the model (`model.safetensors`, keys as the model names its
  parameters, loadable with `from_pretrained`); under FSDP both are gathered, so one process loads them;
- `optimizer.safetensors`: the optimizer state gathered to full tensors, keyed by parameter name, its parameter groups
  (hyper-parameters) in the file's metadata; `scheduler.json`, `scaler.json` (fp16), `rng_state[_RANK].safetensors`
  (torch, CUDA, numpy and Python generators, one file per process), `trainer_state.json`, `training_args.json`;
- `llada_uni_checkpoint.json`, written last: the identity of the base model's configuration, the world size and batch
  layout, the distributed engine. A folder without it is an unfinished checkpoint and is never resumed from.

Under DeepSpeed the model and optimizer states are DeepSpeed's own (`global_stepN/`, written and read by DeepSpeed's
engine with `torch.save` / `torch.load`); everything else is as above.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


CHECKPOINT_INFO_NAME = "llada_uni_checkpoint.json"
OPTIMIZER_NAME = "optimizer.safetensors"
SCHEDULER_NAME = "scheduler.json"
SCALER_NAME = "scaler.json"
TRAINING_ARGS_NAME = "training_args.json"
FORMAT_VERSION = 1

# Configuration fields that decide the shapes and the computation of the backbone: equal fields, same base model
# architecture (a released and a converted folder of one model agree; dtype, paths and runtime switches do not count).
_IDENTITY_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "use_qkv_bias", "use_qk_norm", "use_bias", "rms_norm_eps",
    "max_position_embeddings", "num_experts", "num_shared_experts", "num_experts_per_tok", "n_group", "topk_group",
    "routed_scaling_factor", "moe_intermediate_size", "first_k_dense_replace", "image_token_offset",
    "image_codebook_size", "tie_word_embeddings",
)
# Optimizer group entries that change speed, not the update (and `lr`, which the schedule moves).
_OPTIMIZER_RUNTIME_KEYS = {"params", "lr", "foreach", "fused", "capturable", "differentiable"}


def rng_file_name(world_size: int, process_index: int) -> str:
    return "rng_state.safetensors" if world_size <= 1 else f"rng_state_{process_index}.safetensors"


def base_model_identity(config: PreTrainedConfig) -> dict[str, Any]:
    """A digest of the base model configuration's architecture fields (`_IDENTITY_FIELDS`), with its path for
    messages."""
    fields = {name: getattr(config, name, None) for name in _IDENTITY_FIELDS}
    rope = getattr(config, "rope_parameters", None) or {}
    fields["rope"] = {k: rope.get(k) for k in ("rope_theta", "partial_rotary_factor")} if isinstance(rope, Mapping) else None
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"identity": digest, "name_or_path": str(getattr(config, "_name_or_path", "") or "")}


def write_json_atomically(path: str | os.PathLike, data: Any) -> None:
    """Writes `data` as JSON to a temporary file beside `path`, then renames it into place."""
    path = os.fspath(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Reads a JSON file of a checkpoint; a missing or damaged file raises a ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: the checkpoint has no {what}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as the {what} ({type(error).__name__}: {error}).") from None


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, os.fspath(path), metadata=metadata)


def load_safetensors(path: str | os.PathLike, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a missing, truncated or foreign file raises a ValueError."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: the checkpoint has no {what}.")
    try:
        with safe_open(path, framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read as the {what} (truncated or not safetensors: {error}).") from None


# --------------------------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------------------------


def load_weight_files(folder: str | os.PathLike, names: Sequence[str], what: str) -> dict[str, torch.Tensor]:
    """All tensors of the first of `names` found in `folder` (a `*.safetensors.index.json` reads its shards)."""
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if name.endswith(".index.json"):
            index = read_json(path, f"{what} index")
            tensors = {}
            for shard in sorted(set(index.get("weight_map", {}).values())):
                tensors.update(load_safetensors(os.path.join(folder, shard), what)[0])
            return tensors
        return load_safetensors(path, what)[0]
    raise ValueError(f"{folder} holds no {what} ({' or '.join(names)}).")


def check_tensor_names(
    saved: Mapping[str, torch.Tensor], expected: Mapping[str, Sequence[int]], source: str, what: str
) -> None:
    """Refuses saved weights whose names or shapes differ from what this run trains.

    Args:
        saved: the checkpoint's tensors.
        expected: name -> shape of the tensors this run would save.
        source / what: the checkpoint folder and what the tensors are, for messages.
    """
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} tensor(s) this run's {what} has (e.g. {missing[0]})")
        if extra:
            parts.append(f"holds {len(extra)} tensor(s) this run's {what} does not have (e.g. {extra[0]})")
        raise ValueError(f"The {what} in {source} {' and '.join(parts)}: it was trained with other settings.")
    for name, tensor in saved.items():
        shape = tuple(expected[name])
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"The {what} in {source} has {name} of shape {tuple(tensor.shape)}, this run's is {shape}: it was trained "
                "with other settings."
            )


# --------------------------------------------------------------------------------------------------------------------
# Optimizer, scheduler, scaler
# --------------------------------------------------------------------------------------------------------------------


def optimizer_state_to_safetensors(state: Mapping[str, Any], optimizer_class: str) -> tuple[dict, dict[str, str]]:
    """An optimizer state keyed by parameter name (`get_optimizer_state_dict`) -> safetensors tensors + metadata."""
    tensors, scalars = {}, {}
    for name, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}::{key}"] = value
            else:
                scalars[f"{name}::{key}"] = value
    metadata = {
        "format": "llada-uni-optimizer",
        "optimizer": optimizer_class,
        "param_groups": json.dumps(state["param_groups"], default=_json_value),
        "scalars": json.dumps(scalars, default=_json_value),
    }
    return tensors, metadata


def optimizer_state_from_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """Reads what [`optimizer_state_to_safetensors`] wrote: (state keyed by parameter name, optimizer class name)."""
    tensors, metadata = load_safetensors(path, "optimizer state")
    if metadata.get("format") != "llada-uni-optimizer" or "param_groups" not in metadata:
        raise ValueError(f"{path} is not an optimizer state written by LLaDAUniMaskedDiffusionTrainer.")
    try:
        groups = json.loads(metadata["param_groups"])
        scalars = json.loads(metadata.get("scalars", "{}"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its parameter groups cannot be read ({error}).") from None
    state: dict[str, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(scalars.items()):
        name, _, entry = key.rpartition("::")
        state.setdefault(name, {})[entry] = value
    return {"state": state, "param_groups": groups}, metadata.get("optimizer", "")


def _json_value(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (np.generic,)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
        except (TypeError, ValueError):
            return False
    return a == b


def check_optimizer_groups(
    saved_groups: Sequence[Mapping[str, Any]],
    current_groups: Sequence[Mapping[str, Any]],
    scheduler_last_lr: Sequence[float] | None,
    source: str,
) -> None:
    """Refuses an optimizer state whose hyper-parameters or parameters disagree with the run's optimizer.

    Args:
        saved_groups: the checkpoint's parameter groups (`params` are parameter names).
        current_groups: this run's groups, in the same form.
        scheduler_last_lr: the checkpoint scheduler's last learning rates; the saved `lr` must match them.
        source: the file, for messages.
    """
    if len(saved_groups) != len(current_groups):
        raise ValueError(
            f"The optimizer state in {source} has {len(saved_groups)} parameter group(s), this run's optimizer "
            f"{len(current_groups)}: it was trained with other settings."
        )
    for i, (saved, current) in enumerate(zip(saved_groups, current_groups)):
        saved_names, current_names = set(saved.get("params", [])), set(current.get("params", []))
        if saved_names != current_names:
            detail = sorted(saved_names - current_names) or sorted(current_names - saved_names)
            raise ValueError(
                f"The optimizer state in {source} covers other parameters than this run trains (group {i}, e.g. "
                f"{detail[0]}): it was trained with other settings."
            )
        for key in sorted((set(saved) | set(current)) - _OPTIMIZER_RUNTIME_KEYS):
            if not _same(saved.get(key), current.get(key)):
                raise ValueError(
                    f"The optimizer state in {source} has {key}={saved.get(key)!r} (group {i}), this run has "
                    f"{current.get(key)!r}: resume with the settings of the checkpoint's run."
                )
        if scheduler_last_lr is not None and i < len(scheduler_last_lr):
            if not _same(saved.get("lr"), scheduler_last_lr[i]):
                raise ValueError(
                    f"The optimizer state in {source} has learning rate {saved.get('lr')!r} (group {i}) but its "
                    f"scheduler was at {scheduler_last_lr[i]!r}: the state was edited or damaged."
                )


def scheduler_state_to_json(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    state = scheduler.state_dict()
    try:
        json.dumps(state, default=_json_value)
    except TypeError as error:
        raise ValueError(
            f"The learning-rate scheduler {type(scheduler).__name__} has a state that is not plain data ({error}); "
            "it cannot be checkpointed without pickle."
        ) from None
    return {"class": type(scheduler).__name__, "state": json.loads(json.dumps(state, default=_json_value))}


# --------------------------------------------------------------------------------------------------------------------
# Random generators
# --------------------------------------------------------------------------------------------------------------------


def rng_state_tensors() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """This process's generators: torch (CPU and the current CUDA device) as tensors, Python and numpy in metadata."""
    tensors = {"cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    python_version, python_state, python_gauss = random.getstate()
    metadata = {
        "numpy": json.dumps([name, int(pos), int(has_gauss), float(cached)]),
        "python": json.dumps([python_version, list(python_state), python_gauss]),
    }
    return tensors, metadata


def restore_rng_state(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], source: str) -> None:
    try:
        name, pos, has_gauss, cached = json.loads(metadata["numpy"])
        python_version, python_state, python_gauss = json.loads(metadata["python"])
        cpu = tensors["cpu"]
        numpy_keys = tensors["numpy_keys"].numpy().astype(np.uint32)
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{source} is not a random-generator state of this trainer ({error!r} missing or damaged).") from None
    torch.random.set_rng_state(cpu)
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    np.random.set_state((name, numpy_keys, pos, has_gauss, cached))
    random.setstate((python_version, tuple(python_state), python_gauss))


def iter_checkpoints(output_dir: str | os.PathLike) -> Iterable[tuple[int, str]]:
    """(step, folder) of every `checkpoint-STEP` folder under `output_dir`, complete or not, oldest first."""
    found = []
    if os.path.isdir(output_dir):
        for name in os.listdir(output_dir):
            suffix = name[len("checkpoint-") :]
            path = os.path.join(output_dir, name)
            if name.startswith("checkpoint-") and suffix.isdigit() and os.path.isdir(path):
                found.append((int(suffix), path))
    return sorted(found)


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(folder, CHECKPOINT_INFO_NAME))
