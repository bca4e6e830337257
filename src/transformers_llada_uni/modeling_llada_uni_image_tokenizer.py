# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The LLaDA2.0-Uni SigLIP-VQ image tokenizer: pixels -> one discrete code per 16 x 16 patch.

It is GLM-Image's vision tokenizer, so transformers' own `GlmImageVisionModel` and `GlmImageVQVAE` are reused: their
module names are the released weight names (`model.visual.*`, `model.vqmodel.*`) and, checked against the original
implementation's recordings, they compute the same codes.
"""

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import ModelOutput
from transformers.modeling_utils import PreTrainedModel
from transformers.models.glm_image.modeling_glm_image import GlmImageVisionModel, GlmImageVQVAE

from .configuration_llada_uni_image_tokenizer import LLaDAUniImageVQConfig


@dataclass
class LLaDAUniImageVQOutput(ModelOutput):
    r"""
    image_codes (`torch.LongTensor` of shape `(total_patches,)`):
        Codebook indices of every image, concatenated; each image's codes in raster order (row by row). They do not
        carry the language model's `image_token_offset`.
    image_grid_thw (`torch.LongTensor` of shape `(num_images, 3)`):
        `(1, rows, columns)` of each image's code grid, as given.
    last_hidden_state (`torch.FloatTensor` of shape `(total_patches, hidden_size)`, *optional*):
        The ViT output the codes were quantized from (returned by `forward`, not by `encode`).
    """

    image_codes: torch.LongTensor | None = None
    image_grid_thw: torch.LongTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None

    def codes_per_image(self) -> list[torch.LongTensor]:
        """The codes of each image as a `(rows, columns)` tensor."""
        sizes = self.image_grid_thw.prod(-1).tolist()
        return [
            codes.view(int(rows), int(cols))
            for codes, (_, rows, cols) in zip(self.image_codes.split(sizes), self.image_grid_thw.tolist())
        ]


class LLaDAUniImageVQPreTrainedModel(PreTrainedModel):
    config: LLaDAUniImageVQConfig
    config_class = LLaDAUniImageVQConfig
    # The released file stores `model.visual.*` / `model.vqmodel.*`; with this prefix they load into a model whose
    # top-level modules are `visual` and `vqmodel`.
    base_model_prefix = "model"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["GlmImageVisionBlock", "GlmImageVQVAEVectorQuantizer"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The released file also holds weights of GLM-Image's language model: anything outside the tokenizer is dropped.
    _keys_to_ignore_on_load_unexpected = [r"^(?!(model\.)?(visual|vqmodel)\.)"]


class LLaDAUniImageVQModel(LLaDAUniImageVQPreTrainedModel):
    r"""
    SigLIP ViT (patch 16, learned 2-D position embedding resampled bilinearly to each image's grid, bidirectional
    attention within each image, no final norm) followed by a 1x1 conv to the code width and the nearest codebook
    entry by cosine similarity.

    Inputs are the image processor's packed patches: several images of different sizes go through one call, each
    attending only to itself.

    Example:

    ```python
    >>> from transformers import AutoImageProcessor
    >>> from transformers_llada_uni import LLaDAUniImageProcessor, LLaDAUniImageVQModel

    >>> tokenizer = LLaDAUniImageVQModel.from_pretrained("LLaDA2.0-Uni/image_tokenizer")
    >>> processor = LLaDAUniImageProcessor()
    >>> inputs = processor(image, mode="understand", return_tensors="pt")
    >>> codes = tokenizer.encode(**inputs).image_codes
    ```
    """

    def __init__(self, config: LLaDAUniImageVQConfig):
        super().__init__(config)
        self.visual = GlmImageVisionModel._from_config(config.vision_config)
        self.vqmodel = GlmImageVQVAE._from_config(config.vq_config)
        self.post_init()

    def _validate_inputs(self, pixel_values, image_grid_thw) -> None:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"`pixel_values` must be a torch.Tensor, got {type(pixel_values).__name__}.")
        if not isinstance(image_grid_thw, torch.Tensor):
            raise TypeError(f"`image_grid_thw` must be a torch.Tensor, got {type(image_grid_thw).__name__}.")
        vision = self.config.vision_config
        patch_dim = vision.in_channels * vision.patch_size**2
        if pixel_values.ndim != 2 or pixel_values.shape[-1] != patch_dim:
            raise ValueError(
                f"`pixel_values` must have shape (total_patches, {patch_dim}) = packed patches of "
                f"{vision.in_channels} x {vision.patch_size} x {vision.patch_size} values (what "
                f"LLaDAUniImageProcessor returns), got {tuple(pixel_values.shape)}."
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"`pixel_values` must be a floating point tensor, got {pixel_values.dtype}.")
        if image_grid_thw.ndim != 2 or image_grid_thw.shape[-1] != 3 or image_grid_thw.shape[0] == 0:
            raise ValueError(
                f"`image_grid_thw` must have shape (num_images, 3) with num_images >= 1, got "
                f"{tuple(image_grid_thw.shape)}."
            )
        if image_grid_thw.is_floating_point() or image_grid_thw.dtype == torch.bool:
            raise TypeError(f"`image_grid_thw` must be an integer tensor, got {image_grid_thw.dtype}.")
        if (image_grid_thw[:, 0] != 1).any() or (image_grid_thw[:, 1:] <= 0).any():
            raise ValueError(
                f"Every row of `image_grid_thw` must be (1, rows, columns) with rows, columns >= 1 (one image, no "
                f"video), got {image_grid_thw.tolist()}."
            )
        total = int(image_grid_thw.prod(-1).sum())
        if total != pixel_values.shape[0]:
            raise ValueError(
                f"`image_grid_thw` {image_grid_thw.tolist()} describes {total} patches but `pixel_values` holds "
                f"{pixel_values.shape[0]}."
            )

    @torch.no_grad()
    def _quantize(self, features: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.LongTensor:
        # The 1x1 conv runs on each image laid out as (1, C, rows, cols), exactly as the original does.
        sizes = image_grid_thw.prod(-1).tolist()
        projected = []
        for image_features, (_, rows, cols) in zip(features.split(sizes), image_grid_thw.tolist()):
            grid = image_features.view(rows, cols, -1).permute(2, 0, 1).unsqueeze(0)
            conv = self.vqmodel.quant_conv(grid.to(self.vqmodel.quant_conv.weight.dtype))
            projected.append(conv.squeeze(0).flatten(1).transpose(0, 1))
        projected = torch.cat(projected)

        # Distances in float32 whatever the weights' dtype: bfloat16 rounding would make near-ties pick other codes.
        # Same formula as GLM-Image's quantizer, chunked so `chunk x codebook` is the largest temporary.
        codebook = F.normalize(self.vqmodel.quantize.embedding.weight.float(), p=2, dim=-1).to(projected.device)
        codebook_sq = torch.sum(codebook**2, dim=1)
        codes = []
        for chunk in projected.float().split(self.config.quantize_chunk_size):
            chunk = F.normalize(chunk, p=2, dim=-1)
            distances = (
                torch.sum(chunk**2, dim=1, keepdim=True)
                + codebook_sq
                - 2 * torch.einsum("bd,dn->bn", chunk, codebook.transpose(0, 1))
            )
            codes.append(torch.argmin(distances, dim=1))
        return torch.cat(codes)

    def forward(
        self,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.LongTensor,
        return_hidden_states: bool = True,
        **kwargs: Any,
    ) -> LLaDAUniImageVQOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(total_patches, 3 * patch_size * patch_size)`):
            Packed patches of all images (each image's patches in raster order), as returned by
            [`LLaDAUniImageProcessor`].
        image_grid_thw (`torch.LongTensor` of shape `(num_images, 3)`):
            `(1, rows, columns)` of each image's patch grid.
        return_hidden_states (`bool`, *optional*, defaults to `True`):
            Whether to return the ViT output next to the codes.
        """
        self._validate_inputs(pixel_values, image_grid_thw)
        target = self.visual.patch_embed.proj.weight
        pixel_values = pixel_values.to(device=target.device, dtype=target.dtype)
        image_grid_thw = image_grid_thw.to(device=target.device, dtype=torch.long)
        features = self.visual(pixel_values, grid_thw=image_grid_thw, **kwargs).last_hidden_state
        codes = self._quantize(features, image_grid_thw)
        return LLaDAUniImageVQOutput(
            image_codes=codes,
            image_grid_thw=image_grid_thw.to(codes.device),
            last_hidden_state=features if return_hidden_states else None,
        )

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor, image_grid_thw: torch.LongTensor) -> LLaDAUniImageVQOutput:
        r"""
        Tokenize images: returns `image_codes` (packed, raster order within each image, no `image_token_offset`) and
        `image_grid_thw`; `.codes_per_image()` splits them into `(rows, columns)` grids.

        pixel_values (`torch.FloatTensor` of shape `(total_patches, 3 * patch_size * patch_size)`):
            Packed patches from [`LLaDAUniImageProcessor`].
        image_grid_thw (`torch.LongTensor` of shape `(num_images, 3)`):
            `(1, rows, columns)` of each image.
        """
        return self.forward(pixel_values, image_grid_thw, return_hidden_states=False)


# Earlier "image tokenizer" names of these classes, kept working for now. The classes avoid "Tokenizer" in their
# names: `save_pretrained` treats a class named "...Tokenizer..." as a text tokenizer and writes an `auto_map` entry
# that remote code cannot load.
_DEPRECATED_NAMES = {
    "LLaDAUniImageTokenizerModel": "LLaDAUniImageVQModel",
    "LLaDAUniImageTokenizerPreTrainedModel": "LLaDAUniImageVQPreTrainedModel",
    "LLaDAUniImageTokenizerOutput": "LLaDAUniImageVQOutput",
}


def __getattr__(name):
    if name in _DEPRECATED_NAMES:
        new_name = _DEPRECATED_NAMES[name]
        warnings.warn(
            f"`{name}` is deprecated and will be removed: use `{new_name}` (the same class).", FutureWarning, stacklevel=2
        )
        return globals()[new_name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LLaDAUniImageVQOutput", "LLaDAUniImageVQPreTrainedModel", "LLaDAUniImageVQModel"]
