# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The language model: the released `config.json` + shards -> `LLaDAUniConfig` + the same shards (the released
per-expert key layout, which the model's registered conversion mapping reads), `generation_config.json`, code files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers_llada_uni.released_layout_llada_uni import (
    BACKBONE_INDEX_NAME,
    BACKBONE_WEIGHTS_NAME,
    build_llada_config,
)

from .remote_code import add_remote_code
from .verification import compare, float_tolerance, release_memory
from .weights import WeightPlan, check_shapes, meta_shapes, read_sharded, write_weights

if TYPE_CHECKING:
    from tqdm.auto import tqdm
    from transformers import PreTrainedTokenizerBase

    from transformers_llada_uni import LLaDAUniConfig


@dataclass
class BackbonePlan:
    config: object  # LLaDAUniConfig
    weights: WeightPlan

    @property
    def output_plan(self) -> WeightPlan:
        """The files as written: one `model.safetensors` for an unsharded release, else the release's shards."""
        if len(self.weights.files) == 1:
            return WeightPlan({BACKBONE_WEIGHTS_NAME: next(iter(self.weights.files.values()))})
        return self.weights


def expected_backbone_shapes(config: LLaDAUniConfig) -> dict[str, tuple[int, ...]]:
    """Released key -> shape for a backbone config, derived from the model itself (built on the meta device).

    The model holds the routed experts fused (`experts.gate_up_proj` [E, 2I, H], `experts.down_proj` [E, H, I]); the
    release stores one Linear per expert, which is also the layout the converted checkpoint keeps.
    """
    from transformers_llada_uni import LLaDAUniForConditionalGeneration

    with torch.device("meta"):
        model = LLaDAUniForConditionalGeneration._from_config(config)
    shapes = {}
    for name, shape in meta_shapes(model).items():
        match = re.fullmatch(r"(.*\.mlp\.experts)\.(gate_up_proj|down_proj)", name)
        if match is None:
            shapes[name] = shape
            continue
        prefix, kind = match.groups()
        num_experts, rows, cols = shape
        for e in range(num_experts):
            if kind == "gate_up_proj":
                shapes[f"{prefix}.{e}.gate_proj.weight"] = (rows // 2, cols)
                shapes[f"{prefix}.{e}.up_proj.weight"] = (rows // 2, cols)
            else:
                shapes[f"{prefix}.{e}.down_proj.weight"] = (rows, cols)
    return shapes


def inspect_backbone(src: Path, released_config: dict, tokenizer: PreTrainedTokenizerBase,
                     image_codebook_size: int) -> BackbonePlan:
    """The converted config and the weight plan, every shard header checked against the config's shapes."""
    config = build_llada_config(released_config, tokenizer, image_codebook_size, src)
    infos = read_sharded(src, BACKBONE_INDEX_NAME, BACKBONE_WEIGHTS_NAME, "backbone")
    check_shapes(infos, expected_backbone_shapes(config), f"{src} (backbone)")
    weights = WeightPlan()
    for name, info in infos.items():
        weights.files.setdefault(Path(info.path).name, []).append((name, info))
    return BackbonePlan(config, weights)


def write_backbone(plan: BackbonePlan, out: Path, dtype: torch.dtype | None, include_remote_code: bool,
                   progress: tqdm | None) -> None:
    from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration, LLaDAUniModel
    from transformers_llada_uni.generation_llada_uni import LLaDAUniGenerationConfig

    config = plan.config
    if dtype is not None:
        config.dtype = dtype
    config.architectures = [LLaDAUniForConditionalGeneration.__name__]
    if include_remote_code:
        add_remote_code(config, {"AutoConfig": LLaDAUniConfig, "AutoModel": LLaDAUniModel,
                                 "AutoModelForCausalLM": LLaDAUniForConditionalGeneration}, out)
    # `save_pretrained` of a config registered for an auto class would copy only its own module; the files are
    # copied above, so the plain JSON is written here.
    config.to_json_file(out / "config.json", use_diff=True)
    output_plan = plan.output_plan
    single = BACKBONE_WEIGHTS_NAME in output_plan.files
    write_weights(output_plan, out, dtype, index_name=None if single else BACKBONE_INDEX_NAME, progress=progress)
    LLaDAUniGenerationConfig.from_model_config(config).save_pretrained(out)


def verify_backbone(src: Path, out: Path, config: LLaDAUniConfig, dtype: torch.dtype | None, device: str | torch.device,
                    generator: torch.Generator, num_layers: int | None = None) -> list[str]:
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
    compare(f"{what} logits (no mask)", reference[0], converted[0], problems, rtol)
    compare(f"{what} logits (block-causal, block {block})", reference[1], converted[1], problems, rtol)
    return problems


__all__ = ["BackbonePlan", "expected_backbone_shapes", "inspect_backbone", "write_backbone",
           "verify_backbone"]
