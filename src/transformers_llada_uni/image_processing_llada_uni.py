# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Image processor of LLaDA2.0-Uni: pictures -> packed 16 x 16 patches for the SigLIP-VQ image tokenizer, and decoded
images back to PIL / numpy. PIL and numpy only.

Geometry, checked pixel for pixel against the original implementation's recordings:

- `mode="understand"`: a smart resize picks a size in multiples of 32 px holding 128^2..800^2 px (448^2 px at most
  for each image of a prompt with several images); the picture is resized (bicubic) to cover it and centre-cropped.
- `mode="edit"` (the original editing crop, the reference): the crop size is the one, among sizes of at most 256
  cells of 32 x 32 px with aspect <= 4, whose aspect is closest to the picture's; the picture is cropped to it
  WITHOUT rescaling. The original anchors the picture at its top-left corner on an axis where it is smaller than
  the crop (black fill on the right / bottom) and centres the crop on an axis where it is larger.
- `mode="edit_resize_crop"`: the same crop size, but the picture is resized (bicubic) to cover it and centre-cropped,
  so the whole picture is seen at the crop's scale. Not what the original does; offered because a small picture
  otherwise fills only a corner of the canvas. Only the window the crop keeps is resampled (PIL's `box`), so an
  elongated picture never becomes a huge intermediate; pixels agree with resizing the whole picture and cropping to
  within one grey level (float rounding in PIL's filter bounds).

Every mode refuses pictures more elongated than `max_aspect_ratio` (200:1 by default) with an error naming the size.

The original converts every picture with PIL's `convert("RGB")`, which drops an alpha channel (transparent pixels
keep whatever colour they store): that is the default here. Set `rgba_background=[255, 255, 255]` to composite
transparent pictures on white (or another colour) instead.
"""

import math
import os
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import numpy as np
import PIL.Image
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_base import BatchFeature
from transformers.image_utils import ChannelDimension, PILImageResampling
from transformers.processing_utils import ImagesKwargs, Unpack

if TYPE_CHECKING:
    import torch
    from transformers.image_utils import ImageInput


MODES = ("understand", "edit", "edit_resize_crop")

# Keys of the released GLM-Image `preprocessor_config.json` that describe GLM-Image's own preprocessing; the
# original LLaDA2.0-Uni code ignores them (its sizes are the fields below), so loading that file must not apply them.
_GLM_IMAGE_ONLY_KEYS = ("min_pixels", "max_pixels", "temporal_patch_size", "merge_size", "do_resize", "size")


class LLaDAUniImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    mode (`str`, *optional*, defaults to `"understand"`):
        `"understand"`, `"edit"` (the original editing crop) or `"edit_resize_crop"`; see the module docstring.
    patch_size (`int`, *optional*, defaults to 16):
        Side of the square patches the tokenizer reads (one code each).
    resize_factor (`int`, *optional*, defaults to 32):
        Understanding sizes are multiples of this many pixels.
    understand_min_pixels (`int`, *optional*, defaults to `128 * 128`):
        Smallest understanding size, in pixels.
    understand_max_pixels (`int`, *optional*, defaults to `800 * 800`):
        Largest understanding size of a prompt's only image, in pixels.
    understand_max_pixels_multi (`int`, *optional*, defaults to `448 * 448`):
        Largest understanding size of each image of a prompt with several images.
    max_aspect_ratio (`float`, *optional*, defaults to 200):
        Pictures more elongated than this are refused in every mode (understanding cannot fit them in its pixel budget;
        an editing crop would hold a sliver of them).
    edit_image_size (`int`, *optional*, defaults to 512):
        Editing crops hold at most `(edit_image_size / edit_crop_unit) ** 2` cells of `edit_crop_unit` px.
    edit_crop_unit (`int`, *optional*, defaults to 32):
        Editing crop sizes are multiples of this many pixels.
    edit_max_aspect_ratio (`float`, *optional*, defaults to 4.0):
        Most elongated editing crop.
    rgba_background (`list[int]`, *optional*, defaults to `None`):
        `None`: drop the alpha channel as the original does. An RGB triple: composite transparent pictures on it.
    """

    mode: str | None
    patch_size: int | None
    resize_factor: int | None
    understand_min_pixels: int | None
    understand_max_pixels: int | None
    understand_max_pixels_multi: int | None
    max_aspect_ratio: float | None
    edit_image_size: int | None
    edit_crop_unit: int | None
    edit_max_aspect_ratio: float | None
    rgba_background: list[int] | tuple[int, ...] | None


# This processor's own settings (the TypedDict's annotations also hold every inherited generic one).
_OWN_SETTINGS = tuple(
    name for name in LLaDAUniImageProcessorKwargs.__annotations__ if name not in ImagesKwargs.__annotations__
)
# The generic image-processor settings this processor reads; the others (`size`, `do_resize`, `crop_size`, ...)
# describe geometries it does not have (`mode` sets its geometry) and are refused rather than ignored.
_GENERIC_SETTINGS = (
    "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std", "do_convert_rgb",
    "input_data_format",
)


def smart_resize(
    height: int, width: int, factor: int = 32, min_pixels: int = 128 * 128, max_pixels: int = 800 * 800
) -> tuple[int, int]:
    """Size `(height, width)`, multiples of `factor`, closest to the picture's with `min_pixels..max_pixels` pixels.

    Each side is rounded to the nearest multiple of `factor`; when the rounded area falls outside the budget both
    rounded sides are scaled by the same factor (up with `ceil`, down with `floor`). Scaling the rounded sides (not the
    original ones) is what the original implementation does: a 150 x 100 picture becomes 192 x 128, not 160 x 128.
    """
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(h_bar * w_bar / max_pixels)
        h_bar = max(factor, math.floor(h_bar / beta / factor) * factor)
        w_bar = max(factor, math.floor(w_bar / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h_bar * w_bar))
        h_bar = math.ceil(h_bar * beta / factor) * factor
        w_bar = math.ceil(w_bar * beta / factor) * factor
    return h_bar, w_bar


def edit_crop_sizes(image_size: int = 512, unit: int = 32, max_aspect_ratio: float = 4.0) -> list[tuple[int, int]]:
    """Editing crop sizes `(width, height)`: every grid of at most `(image_size / unit) ** 2` cells of `unit` px that is
    maximal in its aspect class and no more elongated than `max_aspect_ratio`, widest first."""
    num_cells = (image_size // unit) ** 2
    sizes = []
    wp, hp = num_cells, 1
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= max_aspect_ratio:
            sizes.append((wp * unit, hp * unit))
        if (hp + 1) * wp <= num_cells:
            hp += 1
        else:
            wp -= 1
    return sizes


def closest_crop_size(width: int, height: int, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The crop size `(width, height)` whose aspect is closest to the picture's (largest kept fraction
    `min(cw/w, ch/h) / max(cw/w, ch/h)`; ties go to the later-sorting size, as in the original)."""
    scored = [(min(cw / width, ch / height) / max(cw / width, ch / height), (cw, ch)) for cw, ch in sizes]
    return max(scored)[1]


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


class LLaDAUniImageProcessor(PilBackend):
    r"""
    Image processor of LLaDA2.0-Uni (PIL / numpy only). Returns what the image tokenizer model takes: `pixel_values` of
    shape `(total_patches, 3 * patch_size ** 2)` (every image's 16 x 16 patches in raster order, each patch
    channel-first, rescaled by 1/255 and normalised with mean 0.5, std 0.5 in float32) and `image_grid_thw`
    `(num_images, 3)` = `(1, rows, columns)` of patches (the processed size in pixels is `patch_size` times the last two).

    Images may be PIL images, numpy arrays (`(H, W)`, `(H, W, C)` or `(C, H, W)`, uint8 or float in [0, 1]) or
    paths to image files. A list of images is a batch of prompts with one image each; a list of lists groups the
    images of each prompt (a prompt with several images gets the smaller per-image understanding budget).

    See the module docstring for the three geometry modes. Every other field is documented in
    [`LLaDAUniImageProcessorKwargs`].

    Example:

    ```python
    >>> processor = LLaDAUniImageProcessor()
    >>> inputs = processor("photo.png", mode="understand", return_tensors="pt")
    >>> inputs["pixel_values"].shape, inputs["image_grid_thw"]
    ```
    """

    valid_kwargs = LLaDAUniImageProcessorKwargs
    model_input_names = ["pixel_values", "image_grid_thw"]

    resample = PILImageResampling.BICUBIC
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    do_convert_rgb = True
    mode = "understand"
    patch_size = 16
    resize_factor = 32
    understand_min_pixels = 128 * 128
    understand_max_pixels = 800 * 800
    understand_max_pixels_multi = 448 * 448
    max_aspect_ratio = 200.0
    edit_image_size = 512
    edit_crop_unit = 32
    edit_max_aspect_ratio = 4.0
    rgba_background = None

    def __init__(self, **kwargs: Unpack[LLaDAUniImageProcessorKwargs]):
        for key in _GLM_IMAGE_ONLY_KEYS:
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self._validate_settings(**{name: getattr(self, name) for name in _OWN_SETTINGS})

    # ----------------------------------------------------------------------------------------------- validation --
    @staticmethod
    def _validate_settings(**settings):
        mode = settings.get("mode")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        for name in (
            "patch_size", "resize_factor", "understand_min_pixels", "understand_max_pixels",
            "understand_max_pixels_multi", "edit_image_size", "edit_crop_unit",
        ):
            _check_positive_int(name, settings.get(name))
        for name in ("resize_factor", "edit_crop_unit"):
            if settings[name] % settings["patch_size"] != 0:
                raise ValueError(
                    f"`{name}` ({settings[name]}) must be a multiple of `patch_size` ({settings['patch_size']}): "
                    "every processed image must split into whole patches."
                )
        if settings["understand_min_pixels"] > settings["understand_max_pixels"]:
            raise ValueError(
                f"`understand_min_pixels` ({settings['understand_min_pixels']}) must be <= `understand_max_pixels` "
                f"({settings['understand_max_pixels']})."
            )
        if settings["edit_image_size"] < settings["edit_crop_unit"]:
            raise ValueError(
                f"`edit_image_size` ({settings['edit_image_size']}) must be >= `edit_crop_unit` "
                f"({settings['edit_crop_unit']})."
            )
        for name in ("max_aspect_ratio", "edit_max_aspect_ratio"):
            value = settings.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a number >= 1, got {value!r}.")
        background = settings.get("rgba_background")
        if background is not None and (
            not isinstance(background, (list, tuple))
            or len(background) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in background)
        ):
            raise ValueError(
                f"`rgba_background` must be None (drop alpha, as the original) or three integers in 0..255, "
                f"got {background!r}."
            )

    # -------------------------------------------------------------------------------------------------- loading --
    def fetch_images(
        self, image_url_or_urls: "ImageInput | str | list[str] | list[list[str]]"
    ) -> "ImageInput | str | list[str] | list[list[str]]":
        """Pictures are read by [`load_image`] when they are processed (paths, PIL images, arrays; URLs are refused
        there with a clear error), so that alpha and orientation stay as the original reads them: nothing is fetched
        or converted here."""
        return image_url_or_urls

    @staticmethod
    def load_image(
        image: "str | os.PathLike | PIL.Image.Image | np.ndarray | torch.Tensor",
        input_data_format: str | ChannelDimension | None = None,
    ) -> PIL.Image.Image:
        """Any accepted input -> a loaded PIL image; clear errors for paths that do not exist, files that are not
        images, empty images and unsupported types. `input_data_format` (`"channels_first"` / `"channels_last"`) says
        how a 3-D array is laid out; without it the layout is inferred from the shape."""
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            if path.startswith(("http://", "https://")):
                raise ValueError(
                    f"Image URLs are not fetched ({path!r}): download the file and pass its path or a PIL image."
                )
            if not os.path.exists(path):
                raise ValueError(f"Image path {path!r} does not exist.")
            if not os.path.isfile(path):
                raise ValueError(f"Image path {path!r} is not a file.")
            try:
                with PIL.Image.open(path) as opened:
                    opened.load()
                    image = opened.copy()
            except (PIL.UnidentifiedImageError, OSError, SyntaxError) as err:
                raise ValueError(f"{path!r} is not an image file PIL can read ({err}).") from err
        elif isinstance(image, PIL.Image.Image):
            pass
        elif isinstance(image, np.ndarray) or type(image).__module__.startswith("torch"):
            image = _array_to_pil(image, input_data_format)
        else:
            raise TypeError(
                f"An image must be a PIL.Image.Image, a numpy array or a path to an image file, got "
                f"{type(image).__name__}."
            )
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Image has zero size ({image.width} x {image.height}); every side must be >= 1 px.")
        return image

    def convert_to_rgb(
        self, image: PIL.Image.Image, rgba_background: list[int] | tuple[int, ...] | None = None
    ) -> PIL.Image.Image:
        """RGB, as the model reads it: palette, grayscale, CMYK, 16-bit, ... converted; alpha dropped (the original)
        or composited on `rgba_background`."""
        if image.mode == "P":
            # A palette with a transparent index only becomes transparent through RGBA.
            image = image.convert("RGBA")
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
            # 16-bit grayscale: PIL's direct RGB conversion clips at 255, so rescale to 8 bits first.
            array = np.asarray(image, dtype=np.float64)
            peak = 65535.0 if array.max() > 255 else 255.0
            image = PIL.Image.fromarray(np.clip(np.round(array / peak * 255.0), 0, 255).astype(np.uint8), mode="L")
        elif image.mode == "F":
            image = _array_to_pil(np.asarray(image))
        has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La")
        if has_alpha and rgba_background is not None:
            rgba = image.convert("RGBA")
            canvas = PIL.Image.new("RGBA", rgba.size, (*[int(v) for v in rgba_background], 255))
            canvas.alpha_composite(rgba)
            image = canvas
        return image.convert("RGB") if image.mode != "RGB" else image

    # ------------------------------------------------------------------------------------------------- geometry --
    def get_processed_size(
        self, width: int, height: int, mode: str | None = None, images_in_prompt: int = 1, **overrides: Any
    ) -> tuple[int, int]:
        """`(width, height)` a `width x height` picture is processed to in `mode`."""
        settings = self._settings(mode=mode, **overrides)
        ratio = max(width, height) / min(width, height)
        if ratio > settings["max_aspect_ratio"]:
            raise ValueError(
                f"A {width} x {height} picture has aspect ratio {ratio:.1f}; mode {settings['mode']!r} accepts at most "
                f"{settings['max_aspect_ratio']} (set `max_aspect_ratio` or crop the picture)."
            )
        if settings["mode"] == "understand":
            max_pixels = (
                settings["understand_max_pixels"] if images_in_prompt <= 1 else settings["understand_max_pixels_multi"]
            )
            target_h, target_w = smart_resize(
                height, width, settings["resize_factor"], settings["understand_min_pixels"], max_pixels
            )
            return target_w, target_h
        sizes = edit_crop_sizes(
            settings["edit_image_size"], settings["edit_crop_unit"], settings["edit_max_aspect_ratio"]
        )
        return closest_crop_size(width, height, sizes)

    def get_number_of_image_patches(self, height: int, width: int, images_kwargs: dict | None = None) -> int:
        """Number of patches (= image codes) of a `height x width` picture, processed alone in its prompt.

        Args:
            height (`int`), width (`int`): the picture's size in pixels.
            images_kwargs (`dict`, *optional*): overrides of the processor's settings (`mode`, `patch_size`, ...).
        """
        settings = {k: v for k, v in (images_kwargs or {}).items() if k in _OWN_SETTINGS + _GENERIC_SETTINGS}
        patch_size = settings.get("patch_size") or self.patch_size
        processed_width, processed_height = self.get_processed_size(width, height, **settings)
        return (processed_height // patch_size) * (processed_width // patch_size)

    @staticmethod
    def _resize_cover_and_centre_crop(
        image: PIL.Image.Image, width: int, height: int, resample, window_only: bool = False
    ) -> PIL.Image.Image:
        """Resize `image` to cover `width x height` and centre-crop it. `window_only=True` resamples only the window the
        crop keeps (PIL's `box`): memory stays that of the crop whatever the picture's aspect, and pixels agree with the
        whole-picture resize to within one grey level. The understanding resize keeps the whole-picture path, which the
        recordings pin; its intermediate is bounded by the aspect ratio check."""
        scale = max(width / image.width, height / image.height)
        new_width, new_height = max(width, round(image.width * scale)), max(height, round(image.height * scale))
        left, top = (new_width - width) // 2, (new_height - height) // 2
        if (new_width, new_height) == image.size:
            if (left, top, new_width, new_height) == (0, 0, width, height):
                return image
            return image.crop((left, top, left + width, top + height))
        if window_only:
            x_scale, y_scale = image.width / new_width, image.height / new_height
            box = (left * x_scale, top * y_scale, (left + width) * x_scale, (top + height) * y_scale)
            return image.resize((width, height), resample=resample, box=box)
        image = image.resize((new_width, new_height), resample=resample)
        return image.crop((left, top, left + width, top + height))

    @staticmethod
    def _crop_without_rescaling(image: PIL.Image.Image, width: int, height: int) -> PIL.Image.Image:
        # The original's editing crop: centred where the picture is larger, anchored at 0 with black fill where it is
        # smaller (PIL fills the part of the box outside the picture with zeros).
        left = max(0, (image.width - width) // 2)
        top = max(0, (image.height - height) // 2)
        return image.crop((left, top, left + width, top + height))

    def _geometry(self, image: PIL.Image.Image, settings: dict, images_in_prompt: int) -> PIL.Image.Image:
        width, height = self.get_processed_size(
            image.width, image.height, images_in_prompt=images_in_prompt, **settings
        )
        resample = PILImageResampling(settings["resample"]) if settings["resample"] is not None else self.resample
        if settings["mode"] == "edit":
            return self._crop_without_rescaling(image, width, height)
        return self._resize_cover_and_centre_crop(
            image, width, height, resample, window_only=settings["mode"] == "edit_resize_crop"
        )

    # ------------------------------------------------------------------------------------------------ pipeline --
    def _settings(self, **overrides) -> dict:
        settings = {name: getattr(self, name, None) for name in _OWN_SETTINGS + _GENERIC_SETTINGS}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        self._validate_settings(**settings)
        return settings

    def to_patches(self, image: np.ndarray, patch_size: int) -> np.ndarray:
        """`(C, H, W)` -> `(H/p * W/p, C * p * p)`: patches in raster order, each channel-first."""
        channels, height, width = image.shape
        if height % patch_size or width % patch_size:
            raise ValueError(f"Image size {width} x {height} is not a multiple of the patch size {patch_size}.")
        patches = image.reshape(channels, height // patch_size, patch_size, width // patch_size, patch_size)
        return patches.transpose(1, 3, 0, 2, 4).reshape(-1, channels * patch_size * patch_size)

    def _preprocess_image_like_inputs(self, images, *args, **kwargs) -> BatchFeature:
        return_tensors = kwargs.pop("return_tensors", None)
        known = set(_OWN_SETTINGS + _GENERIC_SETTINGS)
        unused = sorted(
            name for name, value in kwargs.items()
            if name not in known and value is not None and value != getattr(type(self), name, None)
        )
        if unused:
            raise ValueError(
                f"LLaDAUniImageProcessor does not use {unused}: its geometry is set by `mode` (and the `understand_*` /"
                " `edit_*` sizes); see `LLaDAUniImageProcessorKwargs`."
            )
        settings = self._settings(**{k: v for k, v in kwargs.items() if k in known})

        prompts = _as_prompts(images)
        mean = np.asarray(settings["image_mean"], dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(settings["image_std"], dtype=np.float32).reshape(-1, 1, 1)
        all_patches, grids = [], []
        for prompt_images in prompts:
            for raw in prompt_images:
                image = self.load_image(raw, settings["input_data_format"])
                if settings["do_convert_rgb"]:
                    image = self.convert_to_rgb(image, settings["rgba_background"])
                elif image.mode not in ("L", "LA", "RGB", "RGBA"):
                    raise ValueError(
                        f"With `do_convert_rgb=False` a picture must be 8-bit L, LA, RGB or RGBA, got mode {image.mode}."
                    )
                image = self._geometry(image, settings, images_in_prompt=len(prompt_images))
                array = np.asarray(image, dtype=np.uint8)
                array = (array[..., None] if array.ndim == 2 else array).transpose(2, 0, 1).astype(np.float32)
                if settings["do_rescale"]:
                    array = array * np.float32(settings["rescale_factor"])
                if settings["do_normalize"]:
                    if mean.shape[0] not in (1, array.shape[0]) or std.shape[0] not in (1, array.shape[0]):
                        raise ValueError(
                            f"`image_mean` / `image_std` have {mean.shape[0]} / {std.shape[0]} values but the picture "
                            f"has {array.shape[0]} channels."
                        )
                    array = (array - mean) / std
                patch_size = settings["patch_size"]
                all_patches.append(self.to_patches(array.astype(np.float32), patch_size))
                grids.append([1, image.height // patch_size, image.width // patch_size])
        data = {
            "pixel_values": np.concatenate(all_patches, axis=0),
            "image_grid_thw": np.asarray(grids, dtype=np.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _validate_preprocess_kwargs(self, **kwargs):
        if kwargs.get("do_normalize") and (kwargs.get("image_mean") is None or kwargs.get("image_std") is None):
            raise ValueError("`image_mean` and `image_std` must be set when `do_normalize=True`.")
        if kwargs.get("do_rescale") and kwargs.get("rescale_factor") is None:
            raise ValueError("`rescale_factor` must be set when `do_rescale=True`.")

    # --------------------------------------------------------------------------------------------- postprocess --
    def postprocess(
        self, images: "torch.Tensor | np.ndarray", output_type: str = "pil"
    ) -> list[PIL.Image.Image] | np.ndarray:
        r"""
        Decoded images in [0, 1] -> PIL images or numpy.

        images (`torch.Tensor` `(B, C, H, W)` / `(C, H, W)`, or `np.ndarray` `(B, H, W, C)` / `(H, W, C)`):
            Values in [0, 1] (clamped); a tensor is channel-first as a decoder returns it, an array channel-last.
        output_type (`str`, *optional*, defaults to `"pil"`):
            `"pil"`: a list of PIL images. `"np"`: a float32 array `(B, H, W, C)` in [0, 1].
        """
        if output_type not in ("pil", "np"):
            raise ValueError(f"`output_type` must be 'pil' or 'np', got {output_type!r}.")
        if type(images).__module__.startswith("torch"):
            array = images.detach().float().cpu().numpy()
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4:
                raise ValueError(f"A tensor of images must be (B, C, H, W) or (C, H, W), got {tuple(array.shape)}.")
            array = array.transpose(0, 2, 3, 1)
        elif isinstance(images, np.ndarray):
            array = images.astype(np.float32)
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4:
                raise ValueError(f"An array of images must be (B, H, W, C) or (H, W, C), got {tuple(images.shape)}.")
        else:
            raise TypeError(f"`images` must be a torch.Tensor or a numpy array, got {type(images).__name__}.")
        if array.shape[-1] not in (1, 3):
            raise ValueError(f"Images must have 1 or 3 channels, got shape {tuple(array.shape)}.")
        array = np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0).astype(np.float32)
        if output_type == "np":
            return array
        pixels = np.round(array * 255.0).astype(np.uint8)
        return [PIL.Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p) for p in pixels]


def _as_prompts(images, allow_empty: bool = False) -> list[list]:
    """Nest the input as prompts -> images: one image, a list (one image per prompt) or a list of lists.
    `allow_empty=True` keeps prompts without images (`[[], [a]]`, as a processor batch mixing text-only prompts has)."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("No images given: pass an image, a list of images or a list of lists of images.")
        prompts = []
        for item in images:
            if isinstance(item, (list, tuple)):
                if len(item) == 0 and not allow_empty:
                    raise ValueError("A prompt's list of images is empty.")
                prompts.append(list(item))
            else:
                prompts.append([item])
        return prompts
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [[image] for image in images]
    return [[images]]


def _array_to_pil(array, input_data_format=None) -> PIL.Image.Image:
    if type(array).__module__.startswith("torch"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.size == 0:
        raise ValueError(f"Image array has zero size (shape {array.shape}).")
    layout = ChannelDimension(input_data_format) if input_data_format is not None else None
    if array.ndim == 3 and (
        layout == ChannelDimension.FIRST
        or (layout is None and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4))
    ):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"Image array must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got shape {array.shape}."
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("Image array holds NaN or infinite values.")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"A float image array must hold values in [0, 1], got {array.min():.3g}..{array.max():.3g}."
            )
        array = np.round(array * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"An integer image array must hold values in 0..255, got {array.min()}..{array.max()}.")
        array = array.astype(np.uint8)
    mode = {2: "L"}.get(array.ndim) or ("RGB" if array.shape[-1] == 3 else "RGBA")
    return PIL.Image.fromarray(np.ascontiguousarray(array), mode=mode)


__all__ = ["LLaDAUniImageProcessor", "smart_resize", "edit_crop_sizes", "closest_crop_size"]
