# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""What LLaDA2.0-Uni fine-tuning trains: LoRA targets (PEFT), full fine-tuning with a frozen router, and routed
experts in 4 bits (QLoRA).

The MoE router (`mlp.gate.weight`) and its `expert_bias` buffer stay frozen in every mode (the public recipe trains
no auxiliary loss, so nothing would keep the routing balanced). bitsandbytes is imported only by the 4-bit functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel
    from transformers import BitsAndBytesConfig, PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    from .configuration_llada_uni import LLaDAUniConfig


class _KernelsHubNotice(logging.Filter):
    """Drops bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" notice: bitsandbytes prints it
    on import when the optional `kernels` package is absent (it falls back to its own CPU kernel), and diffusers'
    quantizers and transformers' Trainer import bitsandbytes whenever it is installed, 4-bit in use or not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "gemm_4bit_forward from kernels-community" not in str(record.msg)


def silence_bitsandbytes_kernel_notice() -> None:
    """Installs [`_KernelsHubNotice`] on bitsandbytes' CPU backend logger (once; before bitsandbytes is imported)."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _KernelsHubNotice) for f in logger.filters):
        logger.addFilter(_KernelsHubNotice())


silence_bitsandbytes_kernel_notice()


# --------------------------------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------------------------------

# Attention projections, the dense MLP of the first layers and the shared experts. Routed experts (per-expert modules
# of a 4-bit model) are excluded: they are opt-in. Full-match regex, as PEFT applies a string target.
DEFAULT_LORA_TARGET_MODULES = (
    r".*\.attention\.(query_key_value|dense)"
    r"|.*\.mlp\.(gate_proj|up_proj|down_proj)"
    r"|.*\.mlp\.shared_experts\.(gate_proj|up_proj|down_proj)"
)
# Fused 3-D routed experts, adapted through PEFT's `target_parameters`.
ROUTED_EXPERT_TARGET_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
# Routed experts after 4-bit quantization (one Linear4bit per expert and projection).
ROUTED_EXPERT_TARGET_MODULES = r".*\.mlp\.experts\.\d+\.(gate_proj|up_proj|down_proj)"
_ROUTER_PATTERN = re.compile(r"(^|\.)mlp\.gate(\.|$)")


def _has_quantized_experts(model) -> bool:
    return any(isinstance(module, LLaDAUniExperts4bit) for module in model.modules())


def llada_uni_lora_config(
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.0,
    target_modules: str | Sequence[str] | None = None,
    train_routed_experts: bool = False,
    quantized_experts: bool = False,
    **kwargs: Any,
) -> LoraConfig:
    """A `peft.LoraConfig` with the LLaDA2.0-Uni default targets.

    Args:
        target_modules: override the default (attention `query_key_value`/`dense`, dense MLP, shared experts).
        train_routed_experts: also adapt the routed experts: through `target_parameters` on the fused 3-D experts,
            or (with `quantized_experts`, after [`quantize_routed_experts`] / [`load_llada_uni_4bit`]) the per-expert
            4-bit modules.
        kwargs: any other `LoraConfig` field.
    """
    from peft import LoraConfig

    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"`r` must be a positive integer, got {r!r}.")
    targets = DEFAULT_LORA_TARGET_MODULES if target_modules is None else target_modules
    target_parameters = kwargs.pop("target_parameters", None)
    if train_routed_experts:
        if quantized_experts:
            if not isinstance(targets, str):
                targets = "|".join(rf".*\.{re.escape(t)}" for t in targets)
            targets = f"{targets}|{ROUTED_EXPERT_TARGET_MODULES}"
        else:
            target_parameters = list(target_parameters or []) + list(ROUTED_EXPERT_TARGET_PARAMETERS)
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        target_parameters=target_parameters,
        bias="none",
        **kwargs,
    )


def _module_matches(name: str, target: str | Sequence[str]) -> bool:
    if isinstance(target, str):
        return re.fullmatch(target, name) is not None
    return any(name == t or name.endswith("." + t) for t in target)


def _check_lora_targets(model: nn.Module, lora_config) -> None:
    names = [name for name, _ in model.named_modules()]
    targets = lora_config.target_modules
    if isinstance(targets, (set, frozenset)):
        targets = sorted(targets)
    if targets:
        items = [targets] if isinstance(targets, str) else list(targets)
        for item in items:
            hits = [n for n in names if _module_matches(n, item if isinstance(targets, str) else [item])]
            if not hits:
                suffixes = sorted({n.rsplit(".", 1)[-1] for n in names if n and not n.rsplit(".", 1)[-1].isdigit()})
                raise ValueError(
                    f"The LoRA target {item!r} matches no module of {type(model).__name__}; module names end in: "
                    f"{suffixes}."
                )
            routers = [n for n in hits if _ROUTER_PATTERN.search(n) and not n.endswith("_proj")]
            if routers:
                raise ValueError(
                    f"The LoRA target {item!r} matches the MoE router ({routers[0]}); the router and its expert_bias "
                    "stay frozen under LoRA."
                )
    parameter_names = [name for name, _ in model.named_parameters()]
    for item in lora_config.target_parameters or []:
        if not any(n == item or n.endswith("." + item) for n in parameter_names):
            raise ValueError(
                f"The LoRA target parameter {item!r} matches no parameter of {type(model).__name__}"
                + (
                    " (its routed experts are quantized per expert: adapt them with `train_routed_experts=True, "
                    "quantized_experts=True`)."
                    if _has_quantized_experts(model)
                    else "."
                )
            )
        if _ROUTER_PATTERN.search(item):
            raise ValueError(f"The LoRA target parameter {item!r} is the MoE router, which stays frozen.")


def get_llada_uni_peft_model(
    model: nn.Module, lora_config: LoraConfig | None = None, adapter_name: str = "default", **lora_kwargs: Any
) -> PeftModel:
    """Wraps `model` with LoRA adapters (`peft.get_peft_model`), defaults from [`llada_uni_lora_config`].

    Every target is checked first: a target that matches nothing, or one that would adapt the MoE router, raises a
    ValueError. The router weight and `expert_bias` stay frozen. For a 4-bit model, call it after
    [`load_llada_uni_4bit`]; it runs `peft.prepare_model_for_kbit_training` (without gradient checkpointing unless
    asked with `use_gradient_checkpointing=True`).

    The result is a plain `peft.PeftModel` (no task type): its forward, `generate` and the image generation methods
    go straight to the model, with the adapter active.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    use_gradient_checkpointing = lora_kwargs.pop("use_gradient_checkpointing", False)
    if lora_config is None:
        lora_kwargs.setdefault("quantized_experts", _has_quantized_experts(model))
        lora_config = llada_uni_lora_config(**lora_kwargs)
    elif lora_kwargs:
        raise ValueError(f"Pass LoRA options either in `lora_config` or as keywords, not both: {sorted(lora_kwargs)}.")
    if not isinstance(lora_config, LoraConfig):
        raise TypeError(f"`lora_config` must be a peft.LoraConfig, got {type(lora_config).__name__}.")
    _check_lora_targets(model, lora_config)
    if getattr(model, "is_loaded_in_4bit", False) or _has_quantized_experts(model):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_gradient_checkpointing)
    elif use_gradient_checkpointing:
        model.gradient_checkpointing_enable()
    peft_model = get_peft_model(model, lora_config, adapter_name=adapter_name)
    for name, parameter in peft_model.named_parameters():
        if _ROUTER_PATTERN.search(name) and "lora_" not in name:
            parameter.requires_grad_(False)
    return peft_model


def adapter_size_bytes(peft_model: PeftModel, adapter_name: str = "default") -> int:
    """Bytes of the adapter's own weights (what `save_pretrained` writes, without the file headers)."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, adapter_name=adapter_name)
    return sum(t.numel() * t.element_size() for t in state.values())


# --------------------------------------------------------------------------------------------------------------------
# Full fine-tuning
# --------------------------------------------------------------------------------------------------------------------


def prepare_llada_uni_full_finetuning(model: nn.Module) -> nn.Module:
    """Full fine-tuning: every parameter trains except the MoE router weights (`mlp.gate.weight`), which stay frozen
    with their `expert_bias` buffer.

    Args:
        model: a full-precision LLaDA2.0-Uni model (not a PEFT model, not quantized).

    Returns:
        The same model, its `requires_grad` flags set.
    """
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_quantized", False):
        raise ValueError("Full fine-tuning needs full-precision weights; a 4-bit model trains with LoRA (QLoRA) only.")
    if hasattr(model, "peft_config"):
        raise ValueError("The model already carries PEFT adapters; full fine-tuning takes the plain model.")
    routers = 0
    for name, parameter in model.named_parameters():
        frozen = _ROUTER_PATTERN.search(name) is not None
        routers += frozen
        parameter.requires_grad_(not frozen)
    if not routers:
        raise ValueError(f"{type(model).__name__} has no MoE router (`mlp.gate`): is it a LLaDA2.0-Uni model?")
    return model


# --------------------------------------------------------------------------------------------------------------------
# QLoRA: routed experts in 4 bits
# --------------------------------------------------------------------------------------------------------------------


class _ExpertMLP(nn.Module):
    """One routed expert as three linears, named like the released per-expert checkpoint keys."""

    def __init__(self, hidden_size: int, intermediate_size: int, act_fn):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.act_fn = act_fn

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LLaDAUniExperts4bit(nn.ModuleList):
    """The routed experts as one module per expert (`experts.E.{gate,up,down}_proj`), so bitsandbytes can store each
    projection as a `Linear4bit` (it only quantizes 2-D linears; the fused 3-D experts would stay in full precision).

    Same call as the fused `LLaDAUniExperts`: `(hidden_states, top_k_index, top_k_weights)`.
    """

    def __init__(self, config: LLaDAUniConfig):
        from transformers.activations import ACT2FN

        act_fn = ACT2FN[config.hidden_act]
        super().__init__(
            [_ExpertMLP(config.hidden_size, config.moe_intermediate_size, act_fn) for _ in range(config.num_experts)]
        )
        self.num_experts = config.num_experts

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        final_hidden_states = torch.zeros_like(hidden_states)
        with torch.no_grad():
            expert_mask = F.one_hot(top_k_index, num_classes=self.num_experts).permute(2, 1, 0)
            expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert_idx in expert_hit[:, 0].tolist():
            top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
            out = self[expert_idx](hidden_states[token_idx]) * top_k_weights[token_idx, top_k_pos, None]
            final_hidden_states.index_add_(0, token_idx, out.to(final_hidden_states.dtype))
        return final_hidden_states


def _is_fused_experts(module: nn.Module) -> bool:
    # By structure, so the copy of the modeling file that remote code loads is recognised too.
    return (
        type(module).__name__ == "LLaDAUniExperts"
        and isinstance(getattr(module, "gate_up_proj", None), torch.Tensor)
        and module.gate_up_proj.ndim == 3
    )


def _bnb_linear(in_features, out_features, quantization_config):
    import bitsandbytes as bnb

    return bnb.nn.Linear4bit(
        in_features,
        out_features,
        bias=False,
        compute_dtype=quantization_config.bnb_4bit_compute_dtype,
        compress_statistics=quantization_config.bnb_4bit_use_double_quant,
        quant_type=quantization_config.bnb_4bit_quant_type,
        quant_storage=quantization_config.bnb_4bit_quant_storage,
    )


def _check_bnb_config(quantization_config):
    from transformers import BitsAndBytesConfig

    if quantization_config is None:
        return BitsAndBytesConfig(load_in_4bit=True)
    if not isinstance(quantization_config, BitsAndBytesConfig) or not quantization_config.load_in_4bit:
        raise ValueError(
            f"Expected a BitsAndBytesConfig with load_in_4bit=True, got {quantization_config!r}."
        )
    return quantization_config


@torch.no_grad()
def quantize_routed_experts(model: nn.Module, quantization_config: BitsAndBytesConfig | None = None) -> nn.Module:
    """Replaces every fused routed-expert module of an already loaded `model` by [`LLaDAUniExperts4bit`] in 4 bits.

    Use it after `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True))` (which quantizes
    the 2-D linears only) or on a full-precision model. Layer by layer, so the extra memory is one layer's experts.
    [`load_llada_uni_4bit`] quantizes the experts while loading instead, never holding them in full precision.
    """
    import bitsandbytes as bnb

    quantization_config = _check_bnb_config(quantization_config)
    config = model.config
    replaced = 0
    for name, module in list(model.named_modules()):
        if not _is_fused_experts(module):
            continue
        device = module.gate_up_proj.device
        intermediate = module.gate_up_proj.shape[1] // 2
        new = LLaDAUniExperts4bit(config)
        for e, expert in enumerate(new):
            weights = {
                "gate_proj": module.gate_up_proj[e, :intermediate],
                "up_proj": module.gate_up_proj[e, intermediate:],
                "down_proj": module.down_proj[e],
            }
            for proj, weight in weights.items():
                linear = _bnb_linear(weight.shape[1], weight.shape[0], quantization_config)
                linear.weight = bnb.nn.Params4bit(
                    weight.detach().to("cpu").contiguous().clone(),
                    requires_grad=False,
                    quant_type=quantization_config.bnb_4bit_quant_type,
                    compress_statistics=quantization_config.bnb_4bit_use_double_quant,
                    quant_storage=quantization_config.bnb_4bit_quant_storage,
                )
                setattr(expert, proj, linear.to(device))
        model.set_submodule(name, new)
        replaced += 1
    if not replaced:
        raise ValueError(f"{type(model).__name__} has no fused routed experts to quantize.")
    model.is_loaded_in_4bit = True
    model.is_quantized = True
    if getattr(model.config, "quantization_config", None) is None:
        model.config.quantization_config = quantization_config
    return model


def _llada_bnb_quantizer_class():
    from transformers.core_model_loading import WeightConverter
    from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer

    class LLaDAUniBnb4BitHfQuantizer(Bnb4BitHfQuantizer):
        """bitsandbytes 4-bit loading that also quantizes LLaDA2.0-Uni's routed experts: before the weights load, the
        fused experts become per-expert linears (replaced by `Linear4bit` like every other linear), and the
        checkpoint's per-expert keys load into them directly instead of being fused."""

        def _process_model_before_weight_loading(self, model, device_map=None, **kwargs):
            with torch.device("meta"):
                for name, module in list(model.named_modules()):
                    if _is_fused_experts(module):
                        model.set_submodule(name, LLaDAUniExperts4bit(model.config))
            return super()._process_model_before_weight_loading(model, device_map=device_map, **kwargs)

        def update_weight_conversions(self, weight_conversions, model):
            if _has_quantized_experts(model):
                weight_conversions = [
                    c
                    for c in weight_conversions
                    if not (
                        isinstance(c, WeightConverter)
                        and any(
                            str(t).endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj"))
                            for t in c._original_target_patterns
                        )
                    )
                ]
            return super().update_weight_conversions(weight_conversions, model)

    return LLaDAUniBnb4BitHfQuantizer


@contextlib.contextmanager
def _llada_bnb_4bit_loading():
    # `from_pretrained` builds its quantizer from the registry and takes no quantizer instance; swapping the entry only
    # for the duration of one call keeps every other model's bitsandbytes loading untouched.
    from transformers.quantizers import auto

    key = "bitsandbytes_4bit"
    previous = auto.AUTO_QUANTIZER_MAPPING[key]
    auto.AUTO_QUANTIZER_MAPPING[key] = _llada_bnb_quantizer_class()
    try:
        yield
    finally:
        auto.AUTO_QUANTIZER_MAPPING[key] = previous


def load_llada_uni_4bit(
    pretrained_model_name_or_path: str | os.PathLike,
    quantization_config: BitsAndBytesConfig | None = None,
    model_class: type[_BaseAutoModelClass] | type[PreTrainedModel] | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """`from_pretrained` with bitsandbytes 4-bit quantization of every linear AND of the routed experts.

    Plain `from_pretrained(..., quantization_config=BitsAndBytesConfig(load_in_4bit=True))` leaves the fused 3-D
    experts (nearly all of the parameters) in full precision. Here the per-expert checkpoint tensors are quantized as
    they are read. Defaults: `BitsAndBytesConfig(load_in_4bit=True)`, `AutoModelForCausalLM`.
    """
    from transformers import AutoModelForCausalLM

    quantization_config = _check_bnb_config(quantization_config)
    model_class = model_class or AutoModelForCausalLM
    with _llada_bnb_4bit_loading():
        model = model_class.from_pretrained(
            pretrained_model_name_or_path, quantization_config=quantization_config, **kwargs
        )
    if not _has_quantized_experts(model):
        raise ValueError(f"{pretrained_model_name_or_path} did not load LLaDA2.0-Uni routed experts.")
    return model


__all__ = [
    "DEFAULT_LORA_TARGET_MODULES",
    "ROUTED_EXPERT_TARGET_PARAMETERS",
    "ROUTED_EXPERT_TARGET_MODULES",
    "llada_uni_lora_config",
    "get_llada_uni_peft_model",
    "adapter_size_bytes",
    "prepare_llada_uni_full_finetuning",
    "LLaDAUniExperts4bit",
    "quantize_routed_experts",
    "load_llada_uni_4bit",
    "silence_bitsandbytes_kernel_notice",
]
