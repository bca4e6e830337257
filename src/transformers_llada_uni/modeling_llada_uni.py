# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""LLaDA2.0-Uni MoE masked-diffusion backbone.

Module names follow the released checkpoint (`word_embeddings`, `attention.query_key_value`, `attention.dense`,
`mlp.gate.expert_bias`, `mlp.shared_experts`, ...) so released weights load 1:1; the routed experts are fused 3-D
parameters (a registered conversion mapping reads and writes the released per-expert keys).
"""

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import Concatenate, MergeModulelist, WeightConverter
from transformers.integrations import use_experts_implementation
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MoeCausalLMOutputWithPast, MoeModelOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_llada_uni import LLaDA2MoeConfig, LLaDAUniConfig
from .conversation_llada_uni import LLaDAUniConversationMixin
from .generation_llada_uni import LLaDAUniGenerationMixin
from .image_inputs_llada_uni import LLaDAUniImageInputsMixin
from .inpainting_llada_uni import LLaDAUniInpaintingMixin


# The released checkpoint stores one Linear per routed expert; the model holds them fused.
def _expert_conversion_mapping():
    return [
        WeightConverter(
            source_patterns=["mlp.experts.*.gate_proj.weight", "mlp.experts.*.up_proj.weight"],
            target_patterns="mlp.experts.gate_up_proj",
            operations=[MergeModulelist(dim=0), Concatenate(dim=1)],
        ),
        WeightConverter(
            source_patterns="mlp.experts.*.down_proj.weight",
            target_patterns="mlp.experts.down_proj",
            operations=[MergeModulelist(dim=0)],
        ),
    ]


for _model_type in ("llada_uni", "llada2_moe"):
    # Registered by model_type so the root model claims it once (nested sub-models are then skipped); overwrite
    # because this module can be imported twice (package and remote-code copy) in one process.
    register_checkpoint_conversion_mapping(_model_type, _expert_conversion_mapping(), overwrite=True)


def block_causal_mask_function(block_length: int) -> Callable:
    """Mask function for `transformers.masking_utils`: a query sees every key of its own block and of earlier blocks,
    blocks of `block_length` tokens aligned to index 0."""

    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return (kv_idx // block_length) <= (q_idx // block_length)

    return inner


class LLaDAUniRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class LLaDAUniRotaryEmbedding(nn.Module):
    inv_freq: torch.Tensor

    def __init__(self, config: LLaDAUniConfig, device: torch.device | None = None):
        super().__init__()
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.config = config
        self.rope_type = self.config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(self.config, device)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("original_inv_freq", inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(
        config: LLaDAUniConfig, device: torch.device | None = None, **kwargs: Any
    ) -> tuple[torch.Tensor, float]:
        base = config.rope_parameters["rope_theta"]
        partial_rotary_factor = config.rope_parameters.get("partial_rotary_factor", 1.0)
        dim = int(config.head_dim * partial_rotary_factor)
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim))
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1).to(x.device)
        position_ids_expanded = position_ids[:, None, :].float()
        device_type = x.device.type if isinstance(x.device.type, str) and x.device.type != "mps" else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = emb.cos() * self.attention_scaling
            sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeoX-style RoPE on the first `cos.shape[-1]` dims of each head; the remaining dims pass through."""
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    rotary_dim = cos.shape[-1]
    q_rot, q_pass = q[..., :rotary_dim], q[..., rotary_dim:]
    k_rot, k_pass = k[..., :rotary_dim], k[..., rotary_dim:]
    q_embed = torch.cat([(q_rot * cos) + (rotate_half(q_rot) * sin), q_pass], dim=-1)
    k_embed = torch.cat([(k_rot * cos) + (rotate_half(k_rot) * sin), k_pass], dim=-1)
    return q_embed, k_embed


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask[:, :, :, : key_states.shape[-2]]
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


class LLaDAUniAttention(nn.Module):
    """Fused QKV projection, per-head QK RMSNorm, partial RoPE, GQA; never causal (the mask says what is seen)."""

    def __init__(self, config: LLaDAUniConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = False
        self.query_key_value = nn.Linear(
            config.hidden_size,
            (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim,
            bias=config.use_qkv_bias,
        )
        self.dense = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=config.use_bias)
        if config.use_qk_norm:
            self.query_layernorm = LLaDAUniRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.key_layernorm = LLaDAUniRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        qkv = self.query_key_value(hidden_states).view(*input_shape, -1, self.head_dim)
        query_states, key_states, value_states = qkv.split(
            [self.num_heads, self.num_key_value_heads, self.num_key_value_heads], dim=-2
        )
        if self.config.use_qk_norm:
            query_states = self.query_layernorm(query_states)
            key_states = self.key_layernorm(key_states)
        query_states = query_states.transpose(1, 2)
        key_states = key_states.transpose(1, 2)
        value_states = value_states.transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        # `(batch, 1, queries)`: False where a query row sees no key (see `_prepare_4d_mask`)
        query_has_keys = kwargs.pop("query_has_keys", None)

        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            is_causal=False,
            **kwargs,
        )
        if query_has_keys is not None:
            # A row that sees nothing attends to nothing: zero output, as the original's sdpa computes it.
            attn_output = attn_output * query_has_keys[:, 0, :, None, None].to(attn_output.dtype)
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.dense(attn_output), attn_weights


class LLaDAUniMLP(nn.Module):
    def __init__(self, config: LLaDAUniConfig, intermediate_size: int | None = None):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size if intermediate_size is None else intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LLaDAUniTopkRouter(nn.Module):
    """Sigmoid router in float32 with group-limited top-k.

    `expert_bias` only decides which experts are chosen; the combine weights are the chosen experts' unbiased
    scores, renormalised to sum 1 and scaled by `routed_scaling_factor`.
    """

    def __init__(self, config: LLaDAUniConfig):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.num_experts = config.num_experts
        self.hidden_dim = config.hidden_size
        self.n_group = config.n_group
        self.topk_group = config.topk_group
        self.routed_scaling_factor = config.routed_scaling_factor
        self.weight = nn.Parameter(torch.zeros(self.num_experts, self.hidden_dim))
        # A buffer, not a parameter: it is updated by load statistics in pre-training, never by gradients.
        self.register_buffer("expert_bias", torch.zeros(self.num_experts, dtype=torch.float32))

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        router_logits = F.linear(hidden_states.float(), self.weight.float())
        scores = router_logits.sigmoid()
        scores_for_choice = scores + self.expert_bias.float()
        num_tokens = scores.shape[0]
        group_scores = (
            scores_for_choice.view(num_tokens, self.n_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
        )
        group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1.0).bool()
        score_mask = group_mask.unsqueeze(-1).expand(-1, -1, self.num_experts // self.n_group).reshape(num_tokens, -1)
        masked = scores_for_choice.masked_fill(~score_mask, float("-inf"))
        topk_indices = torch.topk(masked, k=self.top_k, dim=-1, sorted=False)[1]
        topk_weights = scores.gather(1, topk_indices)
        if self.top_k > 1:
            topk_weights = topk_weights / (topk_weights.sum(dim=-1, keepdim=True) + 1e-20)
        topk_weights = topk_weights * self.routed_scaling_factor
        return router_logits, topk_weights, topk_indices


@use_experts_implementation
class LLaDAUniExperts(nn.Module):
    """Routed experts stored as fused 3-D tensors (`gate_up_proj`: [E, 2I, H], `down_proj`: [E, H, I])."""

    def __init__(self, config: LLaDAUniConfig):
        super().__init__()
        self.num_experts = config.num_experts
        self.hidden_dim = config.hidden_size
        self.intermediate_dim = config.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(self.num_experts, 2 * self.intermediate_dim, self.hidden_dim))
        self.down_proj = nn.Parameter(torch.empty(self.num_experts, self.hidden_dim, self.intermediate_dim))
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        final_hidden_states = torch.zeros_like(hidden_states)
        with torch.no_grad():
            expert_mask = F.one_hot(top_k_index, num_classes=self.num_experts + 1).permute(2, 1, 0)
            expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert_idx in expert_hit:
            expert_idx = expert_idx[0]
            if expert_idx == self.num_experts:
                continue
            top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
            current_state = hidden_states[token_idx]
            gate, up = F.linear(current_state, self.gate_up_proj[expert_idx]).chunk(2, dim=-1)
            current_hidden_states = F.linear(self.act_fn(gate) * up, self.down_proj[expert_idx])
            current_hidden_states = current_hidden_states * top_k_weights[token_idx, top_k_pos, None]
            final_hidden_states.index_add_(0, token_idx, current_hidden_states.to(final_hidden_states.dtype))
        return final_hidden_states


class LLaDAUniSparseMoeBlock(nn.Module):
    def __init__(self, config: LLaDAUniConfig):
        super().__init__()
        self.gate = LLaDAUniTopkRouter(config)
        self.experts = LLaDAUniExperts(config)
        if config.num_shared_experts:
            self.shared_experts = LLaDAUniMLP(
                config, intermediate_size=config.moe_intermediate_size * config.num_shared_experts
            )
        else:
            self.shared_experts = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        orig_shape = hidden_states.shape
        _, topk_weights, topk_indices = self.gate(hidden_states)
        flat = hidden_states.view(-1, orig_shape[-1])
        out = self.experts(flat, topk_indices, topk_weights.to(flat.dtype)).view(*orig_shape)
        if self.shared_experts is not None:
            out = out + self.shared_experts(hidden_states)
        return out


class LLaDAUniDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: LLaDAUniConfig, layer_idx: int):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.attention = LLaDAUniAttention(config, layer_idx)
        if layer_idx < config.first_k_dense_replace:
            self.mlp = LLaDAUniMLP(config, intermediate_size=config.intermediate_size)
        else:
            self.mlp = LLaDAUniSparseMoeBlock(config)
        self.input_layernorm = LLaDAUniRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LLaDAUniRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states, _ = self.attention(
            hidden_states=self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.mlp(self.post_attention_layernorm(hidden_states))
        return residual + hidden_states


class LLaDAUniPreTrainedModel(PreTrainedModel):
    config: LLaDAUniConfig
    config_class = LLaDAUniConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDAUniDecoderLayer"]
    _supports_flash_attn = False  # flash kernels cannot take the block-causal mask
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False
    _keep_in_fp32_modules_strict = ["expert_bias"]
    _keys_to_ignore_on_load_unexpected = [r"rotary_emb\.inv_freq"]
    _can_record_outputs = {
        "router_logits": OutputRecorder(LLaDAUniTopkRouter, index=0),
        "hidden_states": LLaDAUniDecoderLayer,
        "attentions": LLaDAUniAttention,
    }

    @classmethod
    def from_pretrained(
        cls, *args: Any, allow_missing_weights: bool = False, **kwargs: Any
    ) -> "LLaDAUniPreTrainedModel":
        r"""
        As [`~PreTrainedModel.from_pretrained`], but a checkpoint that lacks weights the model needs is an error (a
        16 B diffusion model with randomly initialised layers produces plausible-looking garbage).

        allow_missing_weights (`bool`, *optional*, defaults to `False`):
            Initialise missing weights randomly instead of raising, as plain transformers does.
        """
        return_info = kwargs.pop("output_loading_info", False)
        model, loading_info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing = sorted(loading_info.get("missing_keys", ()))
        if missing and not allow_missing_weights:
            shown = ", ".join(missing[:12]) + (f", ... ({len(missing)} in all)" if len(missing) > 12 else "")
            source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
            raise ValueError(
                f"The checkpoint at {source} lacks weights that {cls.__name__} needs: {shown}. Check that every "
                "shard listed in the weight index is present and complete, or pass `allow_missing_weights=True` to "
                "initialise them randomly."
            )
        return (model, loading_info) if return_info else model

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, LLaDAUniExperts):
            init.normal_(module.gate_up_proj, mean=0.0, std=std)
            init.normal_(module.down_proj, mean=0.0, std=std)
        elif isinstance(module, LLaDAUniTopkRouter):
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.expert_bias)
        # The rotary embedding's buffers are set by the parent for the configured `rope_type` (linear, yarn, ...).


def _prepare_4d_mask(
    mask: torch.Tensor, dtype: torch.dtype, attn_implementation: str
) -> tuple[torch.Tensor, torch.BoolTensor]:
    """A user-given 4-D mask (boolean, True = attend, or additive float) in the form the attention backend takes, and
    which query rows see at least one key (`(batch, 1, queries)`).

    Query rows that see nothing (whole blocks of left padding) get a zero attention output, as torch's sdpa gives
    the original: the backend sees such rows opened up to every key (a softmax over nothing is NaN on some backends
    and kernels) and the attention output of those rows is then multiplied by zero (see `LLaDAUniAttention`).
    """
    if mask.dtype == torch.bool:
        # Unconditionally: a test of `empty_rows.any()` would cost a host sync and a graph break under torch.compile.
        has_keys = mask.any(dim=-1)
        mask = mask | ~has_keys[..., None]
        if attn_implementation == "sdpa":
            return mask, has_keys
        if attn_implementation == "flex_attention":
            # A tensor mask would become a compiled score_mod indexing it (which crashes on CPU); a BlockMask
            # built from it computes the same attention and lets flex skip fully masked tiles.
            from torch.nn.attention.flex_attention import create_block_mask

            dense = mask.expand(mask.shape[0], 1, *mask.shape[2:])

            def mask_mod(batch_idx, head_idx, q_idx, kv_idx):
                return dense[batch_idx, 0, q_idx, kv_idx]

            block_mask = create_block_mask(
                mask_mod, dense.shape[0], None, dense.shape[2], dense.shape[3], device=mask.device
            )
            return block_mask, has_keys
        # eager and flex add a given tensor mask to the scores
        additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        return additive, has_keys
    mask = mask.to(dtype)
    has_keys = (mask > torch.finfo(dtype).min).any(dim=-1)
    return mask.masked_fill(~has_keys[..., None], 0.0), has_keys


def _rows_with_keys(padding_mask: torch.Tensor, query_length: int, block_length: int) -> torch.BoolTensor:
    """`(batch, 1, queries)`: which of the last `query_length` positions see a real key under the block-causal
    pattern of a 2-D padding mask (a query sees its own and earlier blocks, so only the first real key matters)."""
    valid = padding_mask.bool()
    total = valid.shape[-1]
    first_real = torch.where(valid.any(dim=-1), valid.int().argmax(dim=-1), total)
    query_blocks = torch.arange(total - query_length, total, device=valid.device) // block_length
    return ((first_real // block_length)[:, None] <= query_blocks[None, :])[:, None]


class LLaDAUniModel(LLaDAUniPreTrainedModel):
    def __init__(self, config: LLaDAUniConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            [LLaDAUniDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LLaDAUniRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LLaDAUniRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.word_embeddings = value

    def _build_attention_mask(self, attention_mask, inputs_embeds, cache, block_length):
        """The mask for the attention backend and which query rows see a key (None: all of them)."""
        if attention_mask is not None and attention_mask.ndim == 4:
            return _prepare_4d_mask(attention_mask, inputs_embeds.dtype, self.config._attn_implementation)
        if attention_mask is None:
            # No mask at all: every token sees every token (the original's `attention_mask=None`).
            return None, None
        block_length = block_length or self.config.block_length
        mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            and_mask_function=block_causal_mask_function(block_length),
        )
        has_keys = _rows_with_keys(attention_mask, inputs_embeds.shape[1], block_length)
        if isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
            mask = mask | ~has_keys[..., None]
        elif isinstance(mask, torch.Tensor):
            # eager masks are additive: open the fully masked rows (their output is zeroed after attention)
            mask = mask.masked_fill(~has_keys[..., None], 0.0)  # no sync, no graph break
        return mask, has_keys

    @capture_outputs
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        block_length: int | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeModelOutputWithPast:
        r"""
        attention_mask (`torch.Tensor`, *optional*):
            - 2-D `(batch, past + seq)` padding mask (1 = real token): combined with the block-causal pattern of
              `block_length` (default `config.block_length`), blocks aligned to index 0;
            - 4-D `(batch, 1, seq, past + seq)` boolean (True = attend) or additive mask: used as given;
            - `None`: every token sees every token.
        block_length (`int`, *optional*): block size of the block-causal mask built from a 2-D mask.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of `input_ids` or `inputs_embeds`.")
        if input_ids is not None:
            if input_ids.ndim != 2:
                raise ValueError(f"`input_ids` must be 2-D (batch, seq), got shape {tuple(input_ids.shape)}.")
            if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
                raise ValueError(
                    f"`input_ids` is empty (shape {tuple(input_ids.shape)}): give at least one sequence of one token."
                )
            # One host sync per eager forward; a compiled forward skips the check rather than break its graph.
            out_of_range = None if torch.compiler.is_compiling() else (input_ids < 0) | (input_ids >= self.config.vocab_size)
            if out_of_range is not None and out_of_range.any():
                bad = input_ids[out_of_range][0].item()
                raise ValueError(
                    f"`input_ids` holds the id {bad}, outside the vocabulary [0, {self.config.vocab_size})."
                )
        elif inputs_embeds.ndim != 3:
            raise ValueError(
                f"`inputs_embeds` must be 3-D (batch, seq, hidden), got shape {tuple(inputs_embeds.shape)}."
            )
        elif inputs_embeds.shape[0] == 0 or inputs_embeds.shape[1] == 0:
            raise ValueError(
                f"`inputs_embeds` is empty (shape {tuple(inputs_embeds.shape)}): "
                "give at least one sequence of one token."
            )
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)

        batch_size, seq_len = inputs_embeds.shape[:2]
        past_seen_tokens = cache.get_seq_length() if cache is not None else 0
        if attention_mask is not None:
            if attention_mask.ndim == 2:
                if attention_mask.shape != (batch_size, past_seen_tokens + seq_len):
                    raise ValueError(
                        f"The 2-D `attention_mask` has shape {tuple(attention_mask.shape)}, but the ids have shape "
                        f"{(batch_size, seq_len)}" + (f" after {past_seen_tokens} cached tokens" if past_seen_tokens else "")
                        + f": expected {(batch_size, past_seen_tokens + seq_len)}."
                    )
            elif attention_mask.ndim == 4:
                if attention_mask.shape[0] not in (1, batch_size) or attention_mask.shape[-2:] != (
                    seq_len,
                    past_seen_tokens + seq_len,
                ):
                    raise ValueError(
                        f"The 4-D `attention_mask` has shape {tuple(attention_mask.shape)}; expected "
                        f"{(batch_size, 1, seq_len, past_seen_tokens + seq_len)}."
                    )
            else:
                raise ValueError(f"`attention_mask` must be 2-D or 4-D, got {attention_mask.ndim} dimensions.")

        if position_ids is None:
            position_ids = torch.arange(seq_len, device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)

        mask, query_has_keys = self._build_attention_mask(attention_mask, inputs_embeds, cache, block_length)
        if query_has_keys is not None:
            kwargs["query_has_keys"] = query_has_keys
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=mask,
                position_ids=position_ids,
                cache=cache,
                position_embeddings=position_embeddings,
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return MoeModelOutputWithPast(last_hidden_state=hidden_states, cache=cache)


class LLaDAUniForConditionalGeneration(
    LLaDAUniImageInputsMixin, LLaDAUniInpaintingMixin, LLaDAUniConversationMixin, LLaDAUniGenerationMixin,
    LLaDAUniPreTrainedModel,
):
    """The backbone with its LM head. Logits are float32; position i predicts token i (no shift)."""

    _tied_weights_keys = {"lm_head.weight": "model.word_embeddings.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: LLaDAUniConfig):
        super().__init__(config)
        # Position i predicts token i: the masked-LM loss (no shift), which also tells `Trainer` to count labels
        # unshifted; the class name alone would select the causal (shifted) loss.
        self.loss_type = "ForMaskedLM"
        self.model = LLaDAUniModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.lm_head = new_embeddings

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        block_length: int | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeCausalLMOutputWithPast:
        r"""
        logits_to_keep (`int` or `torch.Tensor`): only compute logits for these positions (an int keeps the last
            ones; see `transformers.modeling_utils.slice_logits_to_keep`). Diffusion decoding uses it to compute the
            LM head on the active block only.
        labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*): the masked-diffusion training targets, as a
            masked-LM head takes them: `input_ids` is the noised sequence (`<|mask|>` where noised), `labels` holds
            the clean token where the loss applies and -100 elsewhere. The loss is the cross-entropy over the
            labelled positions, position i predicting token i (no shift), averaged over them (or divided by
            `num_items_in_batch` when `Trainer` passes it). Must match the logits' positions (see `logits_to_keep`).
        pixel_values, image_grid_thw, mm_token_type_ids: the processor's picture inputs; the image tokenizer's ids
            replace the placeholders (see `image_inputs_llada_uni`).
        """
        # Processor picture inputs -> image ids in `input_ids`; inputs the model does not know raise.
        input_ids = self._merge_image_inputs(input_ids, pixel_values, image_grid_thw, mm_token_type_ids)
        self._check_model_kwargs(kwargs)
        outputs: MoeModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            block_length=block_length,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states).float()
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:-1]:
                raise ValueError(
                    f"`labels` has shape {tuple(labels.shape)}, but the logits cover positions of shape "
                    f"{tuple(logits.shape[:-1])}: give one label (or -100) per position."
                )
            loss = self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return MoeCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            router_logits=outputs.router_logits,
        )


class LLaDA2MoeModel(LLaDAUniModel):
    """`LLaDAUniModel` registered for the released `model_type "llada2_moe"`."""

    config_class = LLaDA2MoeConfig


class LLaDA2MoeForConditionalGeneration(LLaDAUniForConditionalGeneration):
    """`LLaDAUniForConditionalGeneration` registered for the released `model_type "llada2_moe"`."""

    config_class = LLaDA2MoeConfig


__all__ = [
    "LLaDAUniPreTrainedModel",
    "LLaDAUniModel",
    "LLaDAUniForConditionalGeneration",
    "LLaDA2MoeModel",
    "LLaDA2MoeForConditionalGeneration",
    "block_causal_mask_function",
]
