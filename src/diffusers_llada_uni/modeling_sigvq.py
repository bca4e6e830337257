# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The decoder-side SigVQ token embedding of LLaDA2.0-Uni as a diffusers model."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class SigVQEmbedding(ModelMixin, ConfigMixin):
    r"""
    Turns a grid of image codes into the caption features that condition the Z-Image decoder.

    `Embedding(num_embeddings, embedding_dim)` then `Linear -> SiLU -> Linear`, applied to the code grid upsampled
    `upsample_factor` times by nearest neighbour. The projector is diffusers' `FeedForward` with the `"linear-silu"`
    activation, whose parameter names (`net.0.proj`, `net.2`) are the released ones.

    Args:
        num_embeddings (`int`, defaults to 16384): size of the image codebook.
        embedding_dim (`int`, defaults to 4096): width of the features (the DiT's `cap_feat_dim`).
        upsample_factor (`int`, defaults to 2): nearest-neighbour upsampling of the code grid; the decoder renders
            each code as `upsample_factor * 16` pixels per side.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(self, num_embeddings: int = 16384, embedding_dim: int = 4096, upsample_factor: int = 2):
        super().__init__()
        self.prior_token_embedding = nn.Embedding(num_embeddings, embedding_dim)
        self.prior_projector = FeedForward(
            embedding_dim, dim_out=embedding_dim, inner_dim=embedding_dim, activation_fn="linear-silu", bias=True
        )

    def forward(self, image_codes: torch.LongTensor) -> torch.Tensor:
        r"""
        Args:
            image_codes (`torch.LongTensor` of shape `(batch_size, height, width)`): codes in raster order, each in
                `[0, num_embeddings)`.

        Returns:
            `torch.Tensor` of shape `(batch_size, height * f * width * f, embedding_dim)` with `f = upsample_factor`:
            one feature per cell of the upsampled grid, in raster order.
        """
        if image_codes.ndim != 3:
            raise ValueError(
                f"`image_codes` must have shape (batch_size, height, width), got {tuple(image_codes.shape)}."
            )
        f = self.config.upsample_factor
        batch_size, height, width = image_codes.shape
        # The projector acts on each token alone, so projecting before the nearest-neighbour upsampling gives the
        # same features as the original (upsample, then embed) for a factor f*f less work.
        features = self.prior_projector(self.prior_token_embedding(image_codes))
        features = features.repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)
        return features.reshape(batch_size, height * f * width * f, -1)

    @classmethod
    def from_released_state_dict(cls, state_dict: dict[str, torch.Tensor], upsample_factor: int = 2) -> "SigVQEmbedding":
        r"""
        Builds the module from the released `image_tokenizer/sigvq_embedding.pt` state dict (already read with
        `torch.load(..., weights_only=True)`); sizes come from the tensor shapes.
        """
        key = "prior_token_embedding.weight"
        if key not in state_dict:
            raise ValueError(f"The SigVQ state dict has no `{key}`; its keys are {sorted(state_dict)}.")
        num_embeddings, embedding_dim = state_dict[key].shape
        # Built on the meta device and filled with `assign=True`, so the module keeps the stored dtype.
        with torch.device("meta"):
            model = cls(num_embeddings=num_embeddings, embedding_dim=embedding_dim, upsample_factor=upsample_factor)
        model.load_state_dict(state_dict, strict=True, assign=True)
        return model.eval()
