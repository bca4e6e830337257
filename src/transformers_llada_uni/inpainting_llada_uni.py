# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Inpainting and outpainting for LLaDA2.0-Uni: regenerate a masked region of a picture's code grid.

A masked-diffusion model fills any set of `<|mask|>` positions, so inpainting is a canvas, not a loop: the target
grid starts from the source codes, only the cells to repaint hold the mask id, and the one block-diffusion engine
(`generation_llada_uni`) generates them block by block under guidance while every other cell is given and never
changes; blocks with no masked cell run no forward. This module holds what is particular to the mode:

- the region: a `mask_image` (diffusers' convention, white = repaint, preprocessed by diffusers' `VaeImageProcessor`
  as diffusers' inpaint pipelines do) is put through the same crop / resize the picture gets (the image processor's
  geometry) and mapped onto the code grid: a cell is repainted when the mask covers at least `mask_threshold` of its
  `patch_size x patch_size` pixels (default: any pixel), then the region grows by `mask_dilation` cells. A code-level
  mask (an `h x w` bool array or tensor) is taken as it is;
- outpainting: a larger canvas (a target grid, or `pad_*` cells on each side) with the source codes placed inside and
  the rest masked;
- the conditionings: `"edit"` (the editing prompt with the source picture as the reference and `prompt` as the
  instruction, and the editing guidance branches) or `"text_to_image"` (a caption only, text-to-image guidance);
- [`inpaint_image`], the body of `model.inpaint_image`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from .prompting_llada_uni import (
    build_editing_prompts,
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    image_header_ids,
    parse_image_inputs,
    validate_image_token_ids,
)

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

    from .generation_llada_uni import LLaDAUniGenerationMixin, LLaDAUniImageGenerationOutput
    from .image_processing_llada_uni import LLaDAUniImageProcessor


CONDITIONINGS = ("edit", "text_to_image")
# The generation-config mode whose per-mode fields (steps, guidance scales) each conditioning reads.
_CONDITIONING_MODES = {"edit": "editing", "text_to_image": "text_to_image"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool_array(mask) -> bool:
    if isinstance(mask, torch.Tensor):
        return mask.dtype == torch.bool
    return isinstance(mask, np.ndarray) and mask.dtype == np.bool_


def dilate_code_mask(mask: torch.BoolTensor, cells: int) -> torch.BoolTensor:
    """Grow an `(h, w)` bool mask by `cells` cells in every direction (a square neighbourhood).

    Args:
        mask (`torch.BoolTensor` of shape `(h, w)`): cells to repaint.
        cells (`int`): how far to grow; 0 returns the mask unchanged.
    """
    if cells == 0:
        return mask
    grown = F.max_pool2d(mask[None, None].float(), kernel_size=2 * cells + 1, stride=1, padding=cells)
    return grown[0, 0] > 0


def _check_mask_settings(mask_threshold, mask_dilation):
    if mask_threshold is not None and (
        not isinstance(mask_threshold, (int, float)) or isinstance(mask_threshold, bool)
        or not 0.0 < mask_threshold <= 1.0
    ):
        raise ValueError(f"`mask_threshold` must be None (any pixel) or a fraction in (0, 1], got {mask_threshold!r}.")
    if not _is_int(mask_dilation) or mask_dilation < 0:
        raise ValueError(f"`mask_dilation` must be a non-negative int (cells), got {mask_dilation!r}.")


def as_code_mask(mask: np.ndarray | torch.Tensor | Sequence[bool] | Sequence[Sequence[bool]], h: int, w: int,
                 mask_dilation: int = 0, name: str = "mask") -> torch.BoolTensor:
    """A code-level mask (`h x w` bool array or tensor, True = repaint; a flat `h * w` one in raster order is
    accepted too) as an `(h, w)` `torch.BoolTensor`, grown by `mask_dilation` cells.

    Args:
        mask: the bool mask.
        h, w (`int`): the code grid it must cover.
        mask_dilation (`int`, defaults to 0): cells to grow the region by.
        name (`str`): how error messages call the mask.
    """
    _check_mask_settings(None, mask_dilation)
    if not _is_bool_array(mask):
        raise TypeError(f"`{name}` must be a bool array or tensor of shape ({h}, {w}) (True = repaint the code), got "
                        f"{type(mask).__name__}{'' if not hasattr(mask, 'dtype') else ' of dtype ' + str(mask.dtype)}.")
    mask = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask).cpu()
    if mask.ndim == 1 and mask.numel() == h * w:
        mask = mask.view(h, w)
    if tuple(mask.shape) != (h, w):
        raise ValueError(f"`{name}` has shape {tuple(mask.shape)} but the code grid is ({h}, {w}): give one bool per "
                         "code (or a pixel mask of the picture's size).")
    return dilate_code_mask(mask.clone(), mask_dilation)


def mask_image_to_code_mask(mask_image: str | os.PathLike | PIL.Image.Image | np.ndarray | torch.Tensor,
                            image_processor: LLaDAUniImageProcessor, picture_size: tuple[int, int] | None = None,
                            mode: str = "edit", mask_threshold: float | None = None, mask_dilation: int = 0,
                            grid: tuple[int, int] | None = None, name: str = "mask_image",
                            **image_kwargs: Any) -> torch.BoolTensor:
    """Map a picture-level mask onto the code grid the picture gets (see the module docstring).

    Args:
        mask_image: white = repaint; any single-mask form diffusers' `VaeImageProcessor.preprocess` accepts (PIL image,
            `(H, W)` / `(H, W, 1)` array in [0, 1], `(1, H, W)` tensor, ...), or an `(h, w)` bool code mask.
        image_processor ([`LLaDAUniImageProcessor`]): the processor that crops / resizes the picture.
        picture_size (`tuple[int, int]`, *optional*): the picture's `(width, height)` in pixels; the mask must have
            that size. `None`: the mask is already at the processed size (`grid` times the patch size), no geometry.
        mode (`str`, defaults to `"edit"`): the processor geometry the picture went through (`"edit"`,
            `"edit_resize_crop"`).
        mask_threshold (`float`, *optional*): fraction of a cell's pixels the mask must cover; None: any pixel.
        mask_dilation (`int`, defaults to 0): cells to grow the region by.
        grid (`tuple[int, int]`, *optional*): the picture's code grid `(h, w)`, checked against the result.
        name (`str`): how error messages call the mask.
        image_kwargs: the processor settings the picture was processed with (e.g. `edit_image_size`).

    Returns:
        `torch.BoolTensor` of shape `(h, w)`: True on the cells to repaint.
    """
    from diffusers.image_processor import VaeImageProcessor

    _check_mask_settings(mask_threshold, mask_dilation)
    patch = image_kwargs.get("patch_size") or image_processor.patch_size
    if _is_bool_array(mask_image) and grid is not None and tuple(mask_image.shape[-2:]) == tuple(grid):
        return as_code_mask(mask_image, *grid, mask_dilation=mask_dilation, name=name)
    if _is_bool_array(mask_image):
        mask_image = (torch.as_tensor(np.asarray(mask_image)) if isinstance(mask_image, np.ndarray)
                      else mask_image).float()
    # diffusers' mask preprocessing (grey, [0, 1], binarised at 0.5), at the mask's own size: a mask of another
    # size than the picture is refused, not stretched.
    masks = VaeImageProcessor(do_resize=False, vae_scale_factor=1, do_normalize=False, do_binarize=True,
                              do_convert_grayscale=True)
    try:
        pixels = masks.preprocess(mask_image)
    except (ValueError, TypeError) as err:
        raise TypeError(f"`{name}` must be a PIL image, numpy array or tensor mask (white = repaint): {err}") from None
    if pixels.shape[0] != 1 or pixels.shape[1] != 1:
        raise ValueError(f"`{name}` must be one single-channel mask, got shape {tuple(pixels.shape)} after "
                         "preprocessing; give one mask per picture.")
    size = (int(pixels.shape[3]), int(pixels.shape[2]))  # (width, height)
    expected = picture_size if picture_size is not None else (
        None if grid is None else (grid[1] * patch, grid[0] * patch))
    if expected is not None and size != tuple(expected):
        raise ValueError(f"`{name}` is {size[0]} x {size[1]} px but the picture is {expected[0]} x {expected[1]} px: "
                         "give a mask of the picture's size (or an h x w bool mask of codes).")
    plane = pixels[0, 0].float().numpy()
    if picture_size is not None:
        # The same crop / resize the picture gets, on the mask as a float image.
        plane = np.asarray(processed_picture(image_processor, PIL.Image.fromarray(plane, mode="F"), mode,
                                             **image_kwargs), dtype=np.float32)
        plane = (plane >= 0.5).astype(np.float32)  # a resize leaves grey edges; binarise again as diffusers does
    height, width = plane.shape
    h, w = height // patch, width // patch
    if grid is not None and (h, w) != tuple(grid):
        raise ValueError(f"`{name}` maps onto a {h} x {w} grid but the picture's codes are {grid[0]} x {grid[1]}: "
                         "process both with the same settings.")
    coverage = torch.from_numpy(plane[: h * patch, : w * patch]).view(h, patch, w, patch).mean(dim=(1, 3))
    repaint = coverage > 0 if mask_threshold is None else coverage >= mask_threshold
    return dilate_code_mask(repaint, mask_dilation)


def processed_picture(image_processor: LLaDAUniImageProcessor, picture: PIL.Image.Image, mode: str = "edit",
                      **image_kwargs: Any) -> PIL.Image.Image:
    """`picture` after the crop / resize of `mode` that `image_processor` applies before tokenising (the pixels the
    codes stand for; a float (`"F"`) mask goes through the same geometry). RGB conversion is the caller's."""
    # The processor keeps its geometry private; this is the one place outside it that applies it.
    settings = image_processor._settings(mode=mode, **image_kwargs)
    return image_processor._geometry(picture, settings, 1)


def outpaint_geometry(h: int, w: int, pad_left: int = 0, pad_right: int = 0, pad_top: int = 0, pad_bottom: int = 0,
                      canvas_size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """Where an `h x w` source sits on an outpainting canvas: `(canvas_h, canvas_w, top, left)` in cells.

    Args:
        h, w (`int`): the source grid.
        pad_left, pad_right, pad_top, pad_bottom (`int`, defaults to 0): cells added on each side.
        canvas_size (`tuple[int, int]`, *optional*): the canvas grid `(h, w)` instead of padding; the source is
            centred (an odd margin puts the extra cell after it).
    """
    pads = {"pad_left": pad_left, "pad_right": pad_right, "pad_top": pad_top, "pad_bottom": pad_bottom}
    for key, value in pads.items():
        if not _is_int(value) or value < 0:
            raise ValueError(f"`{key}` must be a non-negative int (cells), got {value!r}.")
    if canvas_size is None:
        return h + pad_top + pad_bottom, w + pad_left + pad_right, pad_top, pad_left
    if any(pads.values()):
        raise ValueError("Give `canvas_size` or the `pad_*` cells, not both.")
    if (not isinstance(canvas_size, (tuple, list)) or len(canvas_size) != 2
            or not all(_is_int(v) and v > 0 for v in canvas_size)):
        raise ValueError(
            f"`canvas_size` must be a pair of positive ints (rows, columns of codes), got {canvas_size!r}."
        )
    canvas_h, canvas_w = canvas_size
    if canvas_h < h or canvas_w < w:
        raise ValueError(f"`canvas_size` {canvas_h} x {canvas_w} is smaller than the source grid {h} x {w}.")
    return canvas_h, canvas_w, (canvas_h - h) // 2, (canvas_w - w) // 2


def build_canvas(source_ids: Sequence[int], h: int, w: int, repaint: torch.BoolTensor | None,
                 geometry: tuple[int, int, int, int], mask_token_id: int) -> torch.LongTensor:
    """The starting ids of the target grid: the source ids at their offset, the mask id on the cells to repaint and
    on the canvas outside the source. Returns a flat `(canvas_h * canvas_w,)` tensor in raster order."""
    canvas_h, canvas_w, top, left = geometry
    canvas = torch.full((canvas_h, canvas_w), mask_token_id, dtype=torch.long)
    source = torch.tensor(list(source_ids), dtype=torch.long).view(h, w)
    if repaint is not None:
        source = source.masked_fill(repaint, mask_token_id)
    canvas[top : top + h, left : left + w] = source
    return canvas.flatten()


@dataclass
class _Request:
    ids: list[int]
    h: int
    w: int
    prompt: str
    repaint: torch.BoolTensor | None


def _as_list(value, count: int, name: str) -> list:
    """`value` as one item per sample: a list of `count` items, or one item shared by all."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"Got {len(value)} {name}s for {count} prompts: give one per prompt, or one to share.")
        return list(value)
    return [value] * count


def inpaint_image(model: LLaDAUniGenerationMixin,
                  image_tokens: Sequence[int] | torch.LongTensor | dict[str, Any] | Sequence[dict[str, Any]],
                  mask: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor] | None = None,
                  h: int | None = None, w: int | None = None, prompt: str | Sequence[str] | None = None,
                  tokenizer: PreTrainedTokenizerBase | None = None, conditioning: str = "edit",
                  pad_left: int = 0, pad_right: int = 0, pad_top: int = 0, pad_bottom: int = 0,
                  canvas_size: tuple[int, int] | None = None, mask_dilation: int = 0, steps: int | None = None,
                  block_length: int | None = None, cfg_scale: float | None = None,
                  cfg_text_scale: float | None = None, cfg_image_scale: float | None = None,
                  temperature: float | None = None, generation_config: GenerationConfig | None = None,
                  callback: Callable[[int, int, torch.LongTensor], Any] | None = None,
                  generator: torch.Generator | None = None,
                  **kwargs: Any) -> LLaDAUniImageGenerationOutput | list[LLaDAUniImageGenerationOutput]:
    """Inpaint or outpaint an image (`h * w` image ids; without `h` and `w`, an `encode_images(..., mode="edit")`
    dict): the cells of `mask` are generated again following `prompt`, every other cell keeps its source code.
    The engine's canvas starts from the source codes with the mask id on the cells to repaint; blocks with no
    masked cell run no forward (an empty mask returns the source codes with no forward at all).

    Args:
        model: the model (`self` when called as `model.inpaint_image`).
        image_tokens: the source's image ids (codes plus `image_token_offset`), or `encode_images` dict(s).
        mask: an `(h, w)` bool array or tensor, True on the codes to repaint (a picture-level mask is mapped by
            `inpainting_llada_uni.mask_image_to_code_mask`, which the inpaint pipeline calls); one per prompt, or
            one shared. Optional when outpainting (then only the new cells are generated).
        prompt (`str` or `list[str]`): the instruction (`conditioning="edit"`) or the caption
            (`"text_to_image"`); a list is a batch, with one `encode_images` dict per prompt, all of one grid.
        conditioning (`str`, defaults to `"edit"`): `"edit"`: the editing prompt, the source as the reference (so
            blocks decoded before later given cells still see them) and editing guidance (`cfg_text_scale`,
            `cfg_image_scale`; `steps` is `edit_steps`); `"text_to_image"`: the caption alone, text-to-image
            guidance (`cfg_scale`; `steps` is `image_steps`). A full mask gives exactly `edit_image` resp.
            `generate_image` on that grid.
        pad_left, pad_right, pad_top, pad_bottom (`int`): outpainting, cells added on each side; or
        canvas_size (`tuple[int, int]`): the outpainting canvas grid, the source centred. The canvas grid must
            have size tokens.
        h, w (`int`, *optional*): the source's code grid when `image_tokens` holds bare ids.
        tokenizer ([`PreTrainedTokenizerBase`], *optional*): defaults to the one set with `set_tokenizer`.
        mask_dilation (`int`, defaults to 0): grow the mask by this many cells.
        steps, block_length, cfg_scale, cfg_text_scale, cfg_image_scale, temperature, generation_config,
            callback, generator, kwargs: as in `edit_image` / `generate_image`; settings not given come from
            `generation_config=`, then `model.generation_config`.

    Returns:
        [`LLaDAUniImageGenerationOutput`] (`.token_ids` the canvas codes without offset, `.h`, `.w` the canvas
        grid), or a list of them for a list of prompts.
    """
    from .generation_llada_uni import LLaDAUniImageGenerationOutput, _Guidance

    tokenizer = model._resolve_tokenizer(tokenizer, "inpaint_image")
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"`conditioning` must be one of {CONDITIONINGS}, got {conditioning!r}.")
    batched = isinstance(prompt, (list, tuple))
    texts = list(prompt) if batched else [prompt]
    if not texts:
        raise ValueError("`prompt` is an empty list; give at least one prompt.")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"`prompt` must be a string or a list of strings, got {type(text).__name__}.")
        if not text.strip():
            raise ValueError("`prompt` is empty; give a non-empty text (an instruction or a caption).")
    requests = parse_image_inputs(image_tokens, h, w, texts=prompt if batched else None, what="prompt")
    for images in requests:
        if len(images) != 1:
            raise TypeError(f"Inpainting takes one source image per prompt, got {len(images)}: give one "
                            "`encode_images(..., mode='edit')` dict (or ids with `h` and `w`) per prompt.")
    if conditioning == "edit" and cfg_scale is not None:
        raise ValueError("`cfg_scale` is text-to-image guidance; with `conditioning='edit'` give `cfg_text_scale` / "
                         "`cfg_image_scale`, or use `conditioning='text_to_image'`.")
    if conditioning == "text_to_image" and (cfg_text_scale is not None or cfg_image_scale is not None):
        raise ValueError("`cfg_text_scale` / `cfg_image_scale` are editing guidance; with "
                         "`conditioning='text_to_image'` give `cfg_scale`.")
    mode = _CONDITIONING_MODES[conditioning]
    scales = ({"cfg_text_scale": cfg_text_scale, "cfg_image_scale": cfg_image_scale} if conditioning == "edit"
              else {"cfg_scale": cfg_scale})
    config = model._generation_settings(generation_config, mode=mode, steps=steps, block_length=block_length,
                                        temperature=temperature, **scales, **kwargs)
    special = model._special_ids(tokenizer, config)
    outpainting = canvas_size is not None or any((pad_left, pad_right, pad_top, pad_bottom))
    masks = _as_list(mask, len(requests), "mask")
    samples = []
    for index, (((name, ids, side_h, side_w),), text, sample_mask) in enumerate(zip(requests, texts, masks)):
        # The public boundary: the ids fill their grid with image ids (checked once, here).
        ids = validate_image_token_ids(ids, side_h, side_w, special.image_token_offset, special.image_codebook_size,
                                       name=name)
        if sample_mask is None and not outpainting:
            raise ValueError("Give `mask` (an h x w bool mask of the codes to repaint), or outpainting's `pad_*` / "
                             "`canvas_size`.")
        repaint = None if sample_mask is None else as_code_mask(
            sample_mask, side_h, side_w, mask_dilation, name="mask" if not batched else f"mask[{index}]")
        samples.append(_Request(ids, side_h, side_w, text, repaint))
    geometries = [outpaint_geometry(s.h, s.w, pad_left, pad_right, pad_top, pad_bottom, canvas_size)
                  for s in samples]
    grids = sorted({geometry[:2] for geometry in geometries})
    if len(grids) > 1:
        raise ValueError(f"A batch of inpaintings shares one canvas grid size; got {grids}: run each size on its own.")
    canvas_h, canvas_w = grids[0]
    image_header_ids(tokenizer, canvas_h, canvas_w)  # a grid the model can write (has size tokens), before any work
    canvases = [build_canvas(s.ids, s.h, s.w, s.repaint, g, special.mask_token_id)
                for s, g in zip(samples, geometries)]
    if conditioning == "edit":
        guidance = _Guidance.editing(config.cfg_text_scale, config.cfg_image_scale, config.guidance_rescale)
        branches = [list(build_editing_prompts(tokenizer, s.ids, s.h, s.w, s.prompt,
                                               output_grid=(canvas_h, canvas_w)))[: guidance.num_branches]
                    for s in samples]
    else:
        guidance = _Guidance.text_to_image(config.cfg_scale, config.guidance_rescale)
        unconditional = build_text_to_image_unconditional_prompt(tokenizer, canvas_h, canvas_w)
        branches = [[build_text_to_image_prompt(tokenizer, s.prompt, canvas_h, canvas_w), unconditional]
                    [: guidance.num_branches] for s in samples]
    decoder = model._decode(branches, canvas_h * canvas_w, config, guidance, special.mask_token_id,
                            special.image_token_offset, logit_rules=[model._image_ids_only(special)],
                            callback=callback, generator=generator, canvas=canvases)
    results = []
    for s, (sample_branches, generated) in enumerate(zip(branches, decoder.outputs(cut_at_stop=False))):
        sequence = torch.cat([torch.tensor(sample_branches[0], dtype=torch.long, device=generated.device), generated])
        results.append(LLaDAUniImageGenerationOutput(
            token_ids=generated[: canvas_h * canvas_w] - special.image_token_offset, h=canvas_h, w=canvas_w,
            sequences=sequence[None], num_forward_passes=decoder.nfe, **decoder.sprint_stats(s),
            **(decoder.scores(s, canvas_h * canvas_w) if config.output_scores else {}),
        ))
    return results if batched else results[0]


def repaint_region(image_tokens_h: int, image_tokens_w: int, repaint: torch.BoolTensor | None,
                   geometry: tuple[int, int, int, int]) -> torch.BoolTensor:
    """The `(canvas_h, canvas_w)` bool grid of the cells that are generated: the repainted source cells and the
    canvas outside the source (what the pipeline's `blend_unmasked` keeps generated)."""
    canvas_h, canvas_w, top, left = geometry
    region = torch.ones(canvas_h, canvas_w, dtype=torch.bool)
    inside = torch.zeros(image_tokens_h, image_tokens_w, dtype=torch.bool) if repaint is None else repaint
    region[top : top + image_tokens_h, left : left + image_tokens_w] = inside
    return region


class LLaDAUniInpaintingMixin:
    """`inpaint_image` for a model with [`LLaDAUniGenerationMixin`] (the engine), kept with the mode's code so that
    the engine does not import its users: `model.inpaint_image(...)` is [`inpaint_image`]`(model, ...)`."""

    inpaint_image = inpaint_image


__all__ = [
    "CONDITIONINGS",
    "LLaDAUniInpaintingMixin",
    "as_code_mask",
    "build_canvas",
    "dilate_code_mask",
    "inpaint_image",
    "mask_image_to_code_mask",
    "outpaint_geometry",
    "processed_picture",
    "repaint_region",
]
