# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Configuration of the LLaDA2.0-Uni SigLIP-VQ image tokenizer."""

import os
import warnings
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig
from transformers.models.glm_image.configuration_glm_image import GlmImageVisionConfig, GlmImageVQVAEConfig


RELEASED_WEIGHTS_NAME = "image_tokenizer.safetensors"

# Keys of the released GLM-Image `config.json` that describe GLM-Image's own language model, not the tokenizer.
_GLM_IMAGE_ONLY_KEYS = (
    "text_config",
    "image_token_id",
    "image_start_token_id",
    "image_end_token_id",
    "tie_word_embeddings",
)


@strict
class LLaDAUniImageVQConfig(PreTrainedConfig):
    r"""
    Configuration of [`LLaDAUniImageVQModel`]: GLM-Image's SigLIP vision transformer followed by its VQ
    quantizer (a 1x1 conv to the code width and a cosine nearest-neighbour lookup in the codebook).

    The released `image_tokenizer/config.json` (a GLM-Image config, `model_type "glm_image"`) is read as is:
    its `vision_config` and `vq_config` are kept, the keys of GLM-Image's language model are dropped.

    Args:
        vision_config (`dict` or [`GlmImageVisionConfig`], *optional*):
            The ViT: `depth`, `hidden_size`, `num_heads`, `intermediate_size`, `patch_size`, and `image_size`, whose
            `image_size / patch_size` square grid of learned position embeddings is resampled to every image's grid.
            Defaults to the released 40-layer, width-1536 encoder.
        vq_config (`dict` or [`GlmImageVQVAEConfig`], *optional*):
            The quantizer: `latent_channels` (= the ViT width), `embed_dim` (code width) and `num_embeddings`
            (codebook size). Defaults to the released 16384 x 2048 codebook.
        quantize_chunk_size (`int`, *optional*, defaults to 1024):
            Number of patches whose distances to the whole codebook are computed at once; bounds the memory of the
            nearest-neighbour search (`chunk x num_embeddings` float32 values).
    """

    model_type = "llada_uni_image_tokenizer"
    sub_configs_defaults = {"vision_config": GlmImageVisionConfig, "vq_config": GlmImageVQVAEConfig}

    vision_config: dict | PreTrainedConfig | None = None
    vq_config: dict | PreTrainedConfig | None = None
    quantize_chunk_size: int = 1024
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        for key in _GLM_IMAGE_ONLY_KEYS:
            kwargs.pop(key, None)
        super().__post_init__(**kwargs)
        if self.vq_config.latent_channels != self.vision_config.hidden_size:
            raise ValueError(
                f"`vq_config.latent_channels` ({self.vq_config.latent_channels}) must equal the ViT width "
                f"`vision_config.hidden_size` ({self.vision_config.hidden_size}): the quantizer reads the ViT output."
            )
        if getattr(self.vision_config, "spatial_merge_size", 1) != 1:
            raise ValueError(
                f"`vision_config.spatial_merge_size` must be 1 (one code per patch), got "
                f"{self.vision_config.spatial_merge_size}."
            )
        if not isinstance(self.quantize_chunk_size, int) or self.quantize_chunk_size <= 0:
            raise ValueError(f"`quantize_chunk_size` must be a positive integer, got {self.quantize_chunk_size!r}.")

    @property
    def patch_size(self) -> int:
        return self.vision_config.patch_size

    @property
    def codebook_size(self) -> int:
        return self.vq_config.num_embeddings

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> PreTrainedConfig | tuple[PreTrainedConfig, dict[str, Any]]:
        r"""As [`~PreTrainedConfig.from_pretrained`]; a released GLM-Image style `config.json` is accepted without the
        model-type mismatch warning, since this class reads exactly its vision and VQ parts."""
        config_dict, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") == "glm_image":
            config_dict = {k: v for k, v in config_dict.items() if k not in _GLM_IMAGE_ONLY_KEYS}
            config_dict["model_type"] = cls.model_type
            config_dict.pop("architectures", None)
            # The released folder names its weights `image_tokenizer.safetensors`, not `model.safetensors`.
            config_dict.setdefault("transformers_weights", RELEASED_WEIGHTS_NAME)
        return cls.from_dict(config_dict, **kwargs)


def __getattr__(name):
    # The class's earlier "image tokenizer" name keeps working for now.
    if name == "LLaDAUniImageTokenizerConfig":
        warnings.warn(
            "`LLaDAUniImageTokenizerConfig` is deprecated and will be removed: use `LLaDAUniImageVQConfig` (the same "
            "class).",
            FutureWarning,
            stacklevel=2,
        )
        return LLaDAUniImageVQConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LLaDAUniImageVQConfig"]
