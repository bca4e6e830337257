# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The processor's picture inputs for the language model's `forward` and `generate`.

`LLaDAUniProcessor` (`processor(images=..., text=...)`, `processor.apply_chat_template(..., images=...)`) puts each
picture's image block in `input_ids` with a placeholder id per image code, marks those positions with
`mm_token_type_ids == 1`, and returns the picture as `pixel_values` + `image_grid_thw`. The model runs its SigLIP-VQ
image tokenizer on the pixels and writes `codes + image_token_offset` over the placeholders, in order, before anything
else happens: the backbone only ever sees image ids, exactly the ids `processor.encode_images` gives.

The image tokenizer (about 1.2 B parameters) is attached with `model.set_image_tokenizer(...)`, or loaded on first use
from the checkpoint's `image_tokenizer/` subfolder in the model's dtype and on its device. It is kept out of the
model's modules, so it is neither saved with the language model's weights nor expected in its checkpoint.
"""

from typing import TYPE_CHECKING
import torch
from transformers.utils import TransformersKwargs

if TYPE_CHECKING:
    from .modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel


IMAGE_TOKENIZER_SUBFOLDER = "image_tokenizer"
# The processor's picture inputs, in `_merge_image_inputs` order.
IMAGE_INPUT_NAMES = ("pixel_values", "image_grid_thw", "mm_token_type_ids")


class LLaDAUniImageInputsMixin:
    """`forward` / `generate` of [`LLaDAUniForConditionalGeneration`] take the processor's picture inputs."""

    def set_image_tokenizer(self, image_tokenizer: "LLaDAUniImageVQModel") -> "LLaDAUniImageInputsMixin":
        """Attach the image tokenizer that turns the processor's `pixel_values` into image ids.

        Args:
            image_tokenizer ([`LLaDAUniImageVQModel`]): its codebook must fit this model's image ids.
        """
        if not hasattr(image_tokenizer, "encode"):
            raise TypeError(f"`image_tokenizer` must be a LLaDAUniImageVQModel, got {type(image_tokenizer).__name__}.")
        codebook = getattr(getattr(image_tokenizer, "config", None), "codebook_size", None)
        if codebook is not None and codebook > self.config.image_codebook_size:
            raise ValueError(
                f"The image tokenizer has {codebook} codes but this model has only {self.config.image_codebook_size} "
                "image ids: they do not belong together."
            )
        # Through `__dict__`: as a submodule it would be saved with, and expected in, the language model's weights.
        self.__dict__["_image_tokenizer"] = image_tokenizer
        return self

    def get_image_tokenizer(self) -> "LLaDAUniImageVQModel":
        """The attached image tokenizer, or the checkpoint's `image_tokenizer/`, loaded once on first use."""
        image_tokenizer = self.__dict__.get("_image_tokenizer")
        if image_tokenizer is not None:
            return image_tokenizer
        from .modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

        source = getattr(self.config, "_name_or_path", None)
        hint = "Attach one with `model.set_image_tokenizer(LLaDAUniImageVQModel.from_pretrained(...))`."
        if not source:
            raise ValueError(f"`pixel_values` need an image tokenizer and this model was not loaded from a folder. {hint}")
        try:
            image_tokenizer = LLaDAUniImageVQModel.from_pretrained(
                source, subfolder=IMAGE_TOKENIZER_SUBFOLDER, dtype=self.dtype
            )
        except OSError as error:
            raise ValueError(
                f"`pixel_values` need an image tokenizer; none is attached and {source!r} has no loadable "
                f"`{IMAGE_TOKENIZER_SUBFOLDER}/` ({error}). {hint}"
            ) from error
        self.set_image_tokenizer(image_tokenizer.to(self.device).eval())
        return image_tokenizer

    def _merge_image_inputs(
        self,
        input_ids: torch.LongTensor | None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
    ) -> torch.LongTensor | None:
        """`input_ids` with the image ids of `pixel_values` written where `mm_token_type_ids == 1`."""
        if pixel_values is None:
            if image_grid_thw is not None:
                raise ValueError("`image_grid_thw` was given without `pixel_values`: pass both, as the processor does.")
            if mm_token_type_ids is not None and bool((mm_token_type_ids == 1).any()):
                raise ValueError(
                    f"`mm_token_type_ids` marks {int((mm_token_type_ids == 1).sum())} image-code positions but no "
                    "`pixel_values` were given: pass the processor's `pixel_values` and `image_grid_thw` too."
                )
            return input_ids
        if input_ids is None:
            raise ValueError("`pixel_values` fill image blocks of `input_ids`; they cannot go with `inputs_embeds`.")
        if image_grid_thw is None or mm_token_type_ids is None:
            missing = [name for name, value in (("image_grid_thw", image_grid_thw),
                                                ("mm_token_type_ids", mm_token_type_ids)) if value is None]
            raise ValueError(f"`pixel_values` need {missing} as well: pass the processor's output as it is.")
        if tuple(mm_token_type_ids.shape) != tuple(input_ids.shape):
            raise ValueError(
                f"`mm_token_type_ids` has shape {tuple(mm_token_type_ids.shape)}, `input_ids` {tuple(input_ids.shape)}."
            )
        image_tokenizer = self.get_image_tokenizer()
        codes = image_tokenizer.encode(pixel_values, torch.as_tensor(image_grid_thw)).image_codes
        positions = (mm_token_type_ids == 1).to(input_ids.device)
        if int(positions.sum()) != codes.numel():
            raise ValueError(
                f"`mm_token_type_ids` marks {int(positions.sum())} image-code positions but the pictures "
                f"(`image_grid_thw` {torch.as_tensor(image_grid_thw).tolist()}) have {codes.numel()} codes."
            )
        image_ids = codes.to(device=input_ids.device, dtype=input_ids.dtype) + self.config.image_token_offset
        return input_ids.masked_scatter(positions, image_ids)

    @staticmethod
    def _check_model_kwargs(kwargs: dict) -> None:
        """Inputs `forward` does not know raise instead of vanishing into the attention kwargs (`None` passes: callers
        such as PEFT name every input they might pass)."""
        unknown = sorted(name for name, value in kwargs.items()
                         if value is not None and name not in TransformersKwargs.__annotations__)
        if unknown:
            raise TypeError(f"Unexpected model input(s) {unknown}.")


__all__ = ["LLaDAUniImageInputsMixin", "IMAGE_INPUT_NAMES"]
