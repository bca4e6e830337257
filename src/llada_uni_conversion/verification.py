# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""How a converted part is compared with its source: written weights bit for bit, one tensor at a time; model outputs
on random inputs within a float tolerance. Each part converter runs its own model comparison with these."""

from __future__ import annotations

import gc
from pathlib import Path

import torch
from transformers_llada_uni.released_layout_llada_uni import CheckpointError

from .safetensors_stream import read_header, read_tensor
from .weights import WeightPlan, target_dtype


class VerificationError(RuntimeError):
    """The converted folder does not reproduce the source; the message lists every difference."""


def compare(name: str, reference: torch.Tensor, converted: torch.Tensor, problems: list[str],
            rtol: float = 0.0) -> None:
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
    """Equal dtype, shape and bit patterns (so NaNs and -0.0 compare as stored)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def verify_written(plan: WeightPlan, out_dir: Path, dtype: torch.dtype | None, where: str,
                   limit: int = 20) -> list[str]:
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
    """Relative tolerance of a float comparison in `dtype` (None: the source dtypes, float32 here)."""
    return 1e-4 if dtype in (None, torch.float32) else 2e-2
