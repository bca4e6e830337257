# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Configuration of the LLaDA2.0-Uni MoE masked-diffusion backbone."""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig
from transformers.modeling_rope_utils import RopeParameters


# Modules whose classes `auto_map` may name: ours. The released config names the original remote code
# (`modeling_llada2uni_moe`), which this package replaces; keeping those entries would make a re-saved checkpoint
# point at files that are not written next to it.
_OWN_CODE_MODULES = ("configuration_llada_uni", "modeling_llada_uni")


def _drop_foreign_auto_map(kwargs):
    auto_map = kwargs.get("auto_map")
    if not isinstance(auto_map, dict):
        return
    kept = {}
    for auto_class, reference in auto_map.items():
        references = reference if isinstance(reference, (list, tuple)) else [reference]
        modules = [ref.split("--")[-1].split(".")[0] for ref in references if ref]
        if modules and all(module in _OWN_CODE_MODULES for module in modules):
            kept[auto_class] = reference
    if kept:
        kwargs["auto_map"] = kept
    else:
        kwargs.pop("auto_map")


@strict
class LLaDAUniConfig(PreTrainedConfig):
    r"""
    Configuration of [`LLaDAUniModel`] / [`LLaDAUniForConditionalGeneration`].

    Every field of the released `config.json` (`model_type "llada2_moe"`) is accepted under the same name. Defaults
    are the released LLaDA2.0-Uni values.

    Args:
        vocab_size (`int`): text vocabulary plus image codebook (`image_token_offset + image_codebook_size`).
        hidden_size (`int`), intermediate_size (`int`): widths of the residual stream and of the dense MLP.
        num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim: transformer shape (GQA).
        use_qkv_bias, use_bias (`bool`): bias on the fused QKV projection / on the attention output projection.
        use_qk_norm (`bool`): per-head RMSNorm on queries and keys before RoPE.
        rope_parameters (`dict`): `rope_theta` and `partial_rotary_factor` (RoPE on the first part of each head).
        num_experts, num_experts_per_tok, num_shared_experts, moe_intermediate_size: routed MoE shape.
        n_group, topk_group (`int`): group-limited routing (keep the best `topk_group` of `n_group` groups).
        routed_scaling_factor (`float`): scale of the renormalised routing weights.
        first_k_dense_replace (`int`): the first layers use a dense SwiGLU MLP instead of experts.
        image_token_offset (`int`): id of image code 0; image codes occupy `[offset, offset + image_codebook_size)`.
        image_codebook_size (`int`, *optional*): number of image codes; derived as `vocab_size - image_token_offset`
            when not given.
        mask_token_id (`int`, *optional*): id of `<|mask|>`, the token that diffusion decoding fills in.
        eos_token_id, pad_token_id (`int`, *optional*): `<|endoftext|>`; `eos_token_id` defaults to `pad_token_id`.
        block_length (`int`): default block length of block-causal attention and of block diffusion.

    Special ids left unset take the released ids when those lie inside the text vocabulary
    (`[0, image_token_offset)`); for a smaller vocabulary they stay `None` (generation then reads them from the
    tokenizer).
    """

    model_type = "llada_uni"
    keys_to_ignore_at_inference = ["cache"]
    # The released vocabulary's special ids: the defaults of unset ids that fall inside the text vocabulary.
    default_special_token_ids = {"mask_token_id": 156895, "pad_token_id": 156892}
    # Fields that fix the weight shapes: a config.json without them would silently build the full released size.
    size_fields = (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "num_experts", "moe_intermediate_size",
    )
    # Tensor parallel (`from_pretrained(..., tp_plan="auto")` under torchrun). The fused `query_key_value` rows are
    # `[q heads | k heads | v heads]` (GQA), which no row shard splits into whole heads: as phi3 does for its fused
    # qkv, its rows are sharded and the output gathered, and `dense` takes the replicated input. The embedding is
    # vocabulary-parallel, so a tied `lm_head` (sharded the same way) stays consistent with it.
    base_model_tp_plan = {
        "word_embeddings": "embedding_rowwise",
        "layers.*.attention.query_key_value": "colwise_gather_output",
        "layers.*.attention.dense": "rowwise_split_input",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
        "layers.*.mlp.shared_experts.gate_proj": "colwise",
        "layers.*.mlp.shared_experts.up_proj": "colwise",
        "layers.*.mlp.shared_experts.down_proj": "rowwise",
        "layers.*.mlp.experts.gate_up_proj": "packed_colwise",
        "layers.*.mlp.experts.down_proj": "rowwise",
        "layers.*.mlp.experts": "moe_tp_experts",
    }
    base_model_pp_plan = {
        "word_embeddings": (["input_ids"], ["inputs_embeds"]),
        "layers": (["hidden_states", "attention_mask"], ["hidden_states"]),
        "norm": (["hidden_states"], ["hidden_states"]),
    }

    vocab_size: int = 173568
    hidden_size: int = 2048
    intermediate_size: int = 5120
    num_hidden_layers: int = 20
    num_attention_heads: int = 16
    num_key_value_heads: int = 4
    head_dim: int | None = 128
    hidden_act: str = "silu"
    use_qkv_bias: bool = False
    use_qk_norm: bool = True
    use_bias: bool = False
    rms_norm_eps: float = 1e-6
    attention_dropout: float | int = 0.0
    initializer_range: float = 0.02
    max_position_embeddings: int = 8192
    rope_parameters: RopeParameters | dict | None = None
    use_cache: bool = False
    sliding_window: int | None = None
    tie_word_embeddings: bool = False
    num_experts: int = 256
    num_shared_experts: int = 1
    num_experts_per_tok: int = 8
    n_group: int = 8
    topk_group: int = 4
    routed_scaling_factor: float = 2.5
    moe_intermediate_size: int = 512
    first_k_dense_replace: int = 1
    output_router_logits: bool = False
    image_token_offset: int = 157184
    image_codebook_size: int | None = None
    mask_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    block_length: int = 32

    def __post_init__(self, **kwargs):
        # The released config carries both a top-level `rope_theta`/`partial_rotary_factor` and `rope_parameters`.
        kwargs.setdefault("rope_theta", 600000.0)
        kwargs.setdefault("partial_rotary_factor", 0.5)
        _drop_foreign_auto_map(kwargs)
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if not isinstance(self.image_token_offset, int) or not 0 <= self.image_token_offset < self.vocab_size:
            raise ValueError(
                f"`image_token_offset` ({self.image_token_offset!r}) must lie in [0, vocab_size={self.vocab_size}): "
                "image code 0 is a token of the vocabulary. Give `image_token_offset` with a smaller `vocab_size`."
            )
        if self.image_codebook_size is None:
            self.image_codebook_size = self.vocab_size - self.image_token_offset
        for name, released_id in self.default_special_token_ids.items():
            if getattr(self, name) is None and released_id < self.image_token_offset:
                setattr(self, name, released_id)
        if self.eos_token_id is None:
            self.eos_token_id = self.pad_token_id
        self._validate_llada_fields()
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(
        cls, config_dict: dict, **kwargs: Any
    ) -> PreTrainedConfig | tuple[PreTrainedConfig, dict[str, Any]]:
        """As [`PreTrainedConfig.from_dict`], but a dict (a `config.json`) without the size fields is an error: it
        would otherwise build the full released size (16 B parameters) before failing on the weights."""
        missing = [name for name in cls.size_fields if name not in config_dict and name not in kwargs]
        if missing:
            raise ValueError(
                f"This {config_dict.get('model_type', cls.model_type)!r} config lacks the size field(s) "
                f"{', '.join(missing)}: a config.json must state the model's shape (the released values are "
                f"{', '.join(f'{name}={cls.__dataclass_fields__[name].default}' for name in missing)})."
            )
        return super().from_dict(config_dict, **kwargs)

    def _validate_llada_fields(self):
        def positive(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")

        for name in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "num_experts", "num_experts_per_tok", "n_group", "topk_group",
            "moe_intermediate_size", "block_length", "image_codebook_size",
        ):
            positive(name)
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be divisible by `num_key_value_heads` "
                f"({self.num_key_value_heads})."
            )
        if self.num_experts % self.n_group != 0:
            raise ValueError(f"`num_experts` ({self.num_experts}) must be divisible by `n_group` ({self.n_group}).")
        if self.topk_group > self.n_group:
            raise ValueError(f"`topk_group` ({self.topk_group}) must be <= `n_group` ({self.n_group}).")
        if self.num_experts_per_tok > self.num_experts:
            raise ValueError(
                f"`num_experts_per_tok` ({self.num_experts_per_tok}) must be <= `num_experts` ({self.num_experts})."
            )
        experts_per_group = self.num_experts // self.n_group
        if self.num_experts_per_tok > self.topk_group * experts_per_group:
            raise ValueError(
                f"`num_experts_per_tok` ({self.num_experts_per_tok}) must be <= `topk_group * num_experts / n_group` "
                f"({self.topk_group * experts_per_group}): only that many experts remain after group selection."
            )
        if experts_per_group < 2:
            raise ValueError(
                f"`num_experts / n_group` must be >= 2 (groups are scored by their top-2 experts), got "
                f"{experts_per_group}."
            )
        if self.num_shared_experts < 0:
            raise ValueError(f"`num_shared_experts` must be >= 0, got {self.num_shared_experts}.")
        if not 0 <= self.first_k_dense_replace <= self.num_hidden_layers:
            raise ValueError(
                f"`first_k_dense_replace` ({self.first_k_dense_replace}) must be within 0..num_hidden_layers "
                f"({self.num_hidden_layers})."
            )
        if self.image_token_offset < 0 or self.image_token_offset + self.image_codebook_size > self.vocab_size:
            raise ValueError(
                f"`image_token_offset + image_codebook_size` ({self.image_token_offset} + {self.image_codebook_size})"
                f" must be <= `vocab_size` ({self.vocab_size})."
            )
        if self.rms_norm_eps <= 0:
            raise ValueError(f"`rms_norm_eps` must be > 0, got {self.rms_norm_eps}.")
        for name in ("mask_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.image_token_offset and self.model_type == "llada_uni":
                raise ValueError(
                    f"`{name}` ({value}) must be a text token id in [0, image_token_offset={self.image_token_offset})."
                )


class LLaDA2MoeConfig(LLaDAUniConfig):
    r"""
    The released checkpoint's own configuration (`model_type "llada2_moe"`), read without remote code.

    Same fields as [`LLaDAUniConfig`]. The released `config.json` does not store the mask token, so it is left unset
    here and read from the tokenizer at generation time (the converted layout, `model_type "llada_uni"`, stores it);
    the EOS id defaults to `pad_token_id` (both are `<|endoftext|>` in the release), and the image codebook size to
    `vocab_size - image_token_offset`.
    """

    model_type = "llada2_moe"

    # The released config.json does not store the mask token.
    default_special_token_ids = {"pad_token_id": 156892}


__all__ = ["LLaDAUniConfig", "LLaDA2MoeConfig"]
