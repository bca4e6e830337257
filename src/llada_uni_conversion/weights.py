# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Weight plans: which source tensor goes to which output file, checked against the shapes a model expects before
anything is written, then written one tensor at a time."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers_llada_uni.released_layout_llada_uni import CheckpointError, MissingFileError, read_json

from .safetensors_stream import ShardReader, TensorInfo, read_header, write_streaming

if TYPE_CHECKING:
    from tqdm.auto import tqdm


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


def require(path: Path, what: str) -> Path:
    """`path` if it is a file, else a `MissingFileError` saying what it should hold."""
    if not path.is_file():
        raise MissingFileError(f"{path} is missing: {what}. Is the source a released LLaDA2.0-Uni folder?")
    return path


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


def meta_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of a model's state dict (build the model on the meta device: nothing is allocated)."""
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def read_sharded(folder: Path, index_name: str, single_name: str, what: str) -> dict[str, TensorInfo]:
    """Headers of a (possibly sharded) safetensors checkpoint, checked against its index."""
    index_path = folder / index_name
    if not index_path.is_file():
        return read_header(require(folder / single_name, f"the {what} weights (or {index_name})"))
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no `weight_map`.")
    infos = {}
    for shard in sorted(set(weight_map.values())):
        for name, info in read_header(require(folder / shard, f"a {what} shard listed in {index_name}")).items():
            if weight_map.get(name) == shard:
                infos[name] = info
    absent = [name for name, shard in weight_map.items() if name not in infos]
    if absent:
        raise CheckpointError(
            f"{index_path} lists {len(absent)} tensor(s) that their shard does not hold, e.g. {absent[0]!r} in "
            f"{weight_map[absent[0]]}."
        )
    return infos


def _keep_in_float32(name: str) -> bool:
    # The router bias decides expert choice by small differences: the model keeps it in float32 whatever the dtype.
    return name.endswith("expert_bias")


def target_dtype(name: str, source: torch.dtype, requested: torch.dtype | None) -> torch.dtype:
    """The dtype a tensor is written in: the requested one for floating-point weights, else its own."""
    if requested is not None and source.is_floating_point and not _keep_in_float32(name):
        return requested
    return source


def write_weights(
    plan: WeightPlan,
    out_dir: Path,
    dtype: torch.dtype | None = None,
    index_name: str | None = None,
    progress: tqdm | None = None,
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
