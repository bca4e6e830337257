# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""End-to-end LLaDA2.0-Uni pipelines: text-to-image (with thinking), editing and understanding.

Each pipeline chains the transformers parts (the language model `LLaDAUniForConditionalGeneration`, its
`LLaDAUniProcessor`, the SigLIP-VQ image tokenizer `LLaDAUniImageVQModel`) with the image decoder
[`LLaDAUniDecoderPipeline`]. All three share one constructor and one folder layout (the converted checkpoint):

```
<folder>/                  the language model, tokenizer and processor (transformers `from_pretrained`)
<folder>/image_tokenizer/  the SigLIP-VQ image tokenizer model
<folder>/decoder/          LLaDAUniDecoderPipeline, the 50-step decoder (diffusers `from_pretrained`)
<folder>/decoder-turbo/    LLaDAUniDecoderPipeline, the distilled 8-step decoder
```

Parts load once and stay loaded; a call reads nothing from disk. Any pipeline can be built from another's parts
(`LLaDAUniImageEditPipeline(**t2i.components)`), or from already-loaded objects.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput, logging
from diffusers.utils.deprecation_utils import _resolve_dtype

from transformers_llada_uni.prompting_llada_uni import parse_image_inputs
from transformers_llada_uni.released_layout_llada_uni import DECODER_DIRS as DECODER_FOLDERS
from transformers_llada_uni.released_layout_llada_uni import IMAGE_TOKENIZER_DIR as IMAGE_TOKENIZER_FOLDER

from .pipeline_llada_uni_decoder import LLaDAUniDecoderPipeline, _is_int, check_generators, prepare_image_codes
from .saving_llada_uni import save_folder, write_end_to_end_files

if TYPE_CHECKING:
    import PIL.Image

    # What the picture arguments take: a picture, a path, an array or tensor (a batch when 4-D), or a list of them.
    PictureInput = (
        PIL.Image.Image | str | os.PathLike | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image | str | os.PathLike]
    )

logger = logging.get_logger(__name__)

IMAGE_OUTPUT_TYPES = ("pil", "np", "pt", "latent", "codes")


@dataclass
class LLaDAUniImagePipelineOutput(BaseOutput):
    r"""
    Output of the text-to-image and editing pipelines.

    Args:
        images: one per prompt: a list of PIL images (`"pil"`), an array `(batch, H, W, 3)` (`"np"`), a tensor
            `(batch, 3, H, W)` (`"pt"`), the decoder's final latents (`"latent"`), or `None` (`"codes"`). With images
            of different sizes in one batch, `"np"`, `"pt"` and `"latent"` give a list.
        image_tokens (`list[torch.LongTensor]`): the image codes of every image (`h * w` codes in raster order,
            without `image_token_offset`): what the decoder takes as `image_tokens`.
        grid_sizes (`list[tuple[int, int]]`): the `(h, w)` code grid of every image.
        thinking (`list[str | None]`): the reasoning text of thinking mode, per prompt (`None` otherwise).
    """

    images: Any
    image_tokens: list[torch.LongTensor]
    grid_sizes: list[tuple[int, int]]
    thinking: list[str | None] | None = None


@dataclass
class LLaDAUniUnderstandingPipelineOutput(BaseOutput):
    r"""
    Output of [`LLaDAUniUnderstandingPipeline`].

    Args:
        text (`list[str]`): one answer per (image or images, question) pair.
        sequences (`list[torch.LongTensor]`): prompt + generated ids of every pair.
    """

    text: list[str]
    sequences: list[torch.LongTensor] | None = None


def _as_list(value, name: str) -> tuple[list, bool]:
    """`(items, was_single)`."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"`{name}` is an empty list.")
        return list(value), False
    return [value], True


def _indices_by_grid(grids: list[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Positions of the items of each grid size, in order: one batched call per size."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, grid in enumerate(grids):
        groups.setdefault(tuple(grid), []).append(index)
    return groups


def _broadcast(first: list, second: list, first_name: str, second_name: str) -> tuple[list, list]:
    if len(first) == 1 and len(second) > 1:
        first = first * len(second)
    elif len(second) == 1 and len(first) > 1:
        second = second * len(first)
    if len(first) != len(second):
        raise ValueError(
            f"Got {len(first)} {first_name} and {len(second)} {second_name}: give one of each per sample, or one to "
            "share."
        )
    return first, second


def _repeat(items: list, times: int) -> list:
    """Each item `times` times in a row: the order of `num_images_per_prompt` images in diffusers."""
    return [item for item in items for _ in range(times)]


_COMPONENT_NAMES = ("model", "processor", "image_tokenizer", "decoder", "turbo_decoder")


def load_decoder_pipeline(
    folder: str | os.PathLike,
    kind: str,
    dtype: torch.dtype | str | None = None,
    device_map: str | None = None,
    variant: str | None = None,
) -> LLaDAUniDecoderPipeline:
    r"""
    The `"normal"` (`decoder/`) or `"turbo"` (`decoder-turbo/`) decoder of an LLaDA2.0-Uni folder: a converted
    decoder (a diffusers pipeline folder) loads with `from_pretrained`, a released one with `from_released`.

    Args:
        folder: the model folder (converted or released layout).
        kind: `"normal"` or `"turbo"`.
        dtype, device_map, variant: as in [`LLaDAUniTextToImagePipeline.from_pretrained`].
    """
    if kind not in DECODER_FOLDERS:
        raise ValueError(f"The decoder kind must be one of {list(DECODER_FOLDERS)}, got {kind!r}.")
    folder = Path(folder)
    sub = folder / DECODER_FOLDERS[kind]
    if dtype == "auto":
        dtype = None  # transformers' "auto" (the stored dtypes) is diffusers' default
    if (sub / "model_index.json").is_file():
        options = {"dtype": dtype, "variant": variant}
        if device_map is not None:
            options["device_map"] = "balanced" if device_map == "auto" else device_map
        return LLaDAUniDecoderPipeline.from_pretrained(sub, **{k: v for k, v in options.items() if v is not None})
    if (sub / "config.json").is_file():
        if variant is not None or device_map is not None:
            raise ValueError(
                f"{sub} is a released decoder: `variant` and `device_map` apply to converted folders; convert it "
                "(`llada-uni convert`) or move the pipeline with `.to(...)`."
            )
        return LLaDAUniDecoderPipeline.from_released(folder, turbo=kind == "turbo", torch_dtype=dtype)
    raise FileNotFoundError(
        f"{folder} has no {DECODER_FOLDERS[kind]}/ decoder (neither a converted one with model_index.json nor a "
        "released one with config.json)."
    )


class _LLaDAUniPipelineBase(DiffusionPipeline):
    r"""The parts, loading and saving shared by the LLaDA2.0-Uni end-to-end pipelines."""

    _optional_components = ["image_tokenizer", "decoder", "turbo_decoder"]
    # The decoders are pipelines, not modules: `enable_model_cpu_offload` below chains their own sequence after this one.
    model_cpu_offload_seq = "image_tokenizer->model"

    def __init__(
        self,
        model,
        processor,
        image_tokenizer=None,
        decoder: LLaDAUniDecoderPipeline | None = None,
        turbo_decoder: LLaDAUniDecoderPipeline | None = None,
    ):
        super().__init__()
        if model is None or processor is None:
            raise ValueError("An LLaDA2.0-Uni pipeline needs the language `model` and its `processor`.")
        for name, value in (("decoder", decoder), ("turbo_decoder", turbo_decoder)):
            if value is not None and not isinstance(value, LLaDAUniDecoderPipeline):
                raise TypeError(f"`{name}` must be a LLaDAUniDecoderPipeline, got {type(value).__name__}.")
        self.register_modules(
            model=model, processor=processor, image_tokenizer=image_tokenizer, decoder=decoder,
            turbo_decoder=turbo_decoder,
        )

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def _load_parts(
        cls,
        folder: Path,
        dtype: torch.dtype | str | None,
        load_decoders: Sequence[str],
        device_map: str | None = None,
        variant: str | None = None,
        components: dict | None = None,
    ) -> dict:
        r"""The parts of `folder` (converted or released layout), except those given in `components` (a part given as
        `None` is not loaded)."""
        from transformers import AutoModelForCausalLM

        import transformers_llada_uni  # noqa: F401  (registers the Auto classes, incl. the released model type)
        from transformers_llada_uni import LLaDAUniImageVQModel, LLaDAUniProcessor

        unknown = [d for d in load_decoders if d not in DECODER_FOLDERS]
        if unknown:
            raise ValueError(f"`load_decoders` takes {list(DECODER_FOLDERS)}, got {unknown}.")
        if device_map is not None and not isinstance(device_map, str):
            raise TypeError(
                "`device_map` must be a string (e.g. 'auto', 'balanced', 'cuda', 'cpu'), got "
                f"{type(device_map).__name__}."
            )
        parts = dict(components or {})
        options = {"dtype": dtype, "device_map": device_map, "variant": variant}
        options = {name: value for name, value in options.items() if value is not None}
        if "model" not in parts:
            # The Auto class picks the converted (`llada_uni`) or the released (`llada2_moe`) model type; the released
            # config's `auto_map` names remote code that is not shipped, this package provides the classes.
            parts["model"] = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False, **options).eval()
        if "processor" not in parts:
            parts["processor"] = LLaDAUniProcessor.from_pretrained(folder)
        if "image_tokenizer" not in parts and (folder / IMAGE_TOKENIZER_FOLDER / "config.json").is_file():
            parts["image_tokenizer"] = LLaDAUniImageVQModel.from_pretrained(
                folder / IMAGE_TOKENIZER_FOLDER, **options
            ).eval()
        for kind in load_decoders:
            name = "turbo_decoder" if kind == "turbo" else "decoder"
            if name not in parts and (folder / DECODER_FOLDERS[kind]).is_dir():
                parts[name] = load_decoder_pipeline(
                    folder, kind, dtype=dtype, device_map=device_map, variant=variant
                )
        return parts

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        dtype: torch.dtype | str | None = None,
        device_map: str | None = None,
        variant: str | None = None,
        load_decoders: Sequence[str] = ("normal", "turbo"),
        torch_dtype: torch.dtype | None = None,
        **kwargs,
    ):
        r"""
        Loads a converted LLaDA2.0-Uni folder (see the module docstring for the layout), or a Hub repository holding
        one. A released folder loads too (its decoders are read as [`LLaDAUniDecoderPipeline.from_released`] reads
        them).

        Args:
            pretrained_model_name_or_path: the folder or Hub repository id.
            dtype: dtype of every part (default: the stored dtypes; `"auto"` for the language model and image
                tokenizer as in transformers). `torch_dtype` is its deprecated name.
            device_map: where to place the parts, as a string: passed to transformers' `from_pretrained` for the
                language model and image tokenizer (`"auto"`, `"balanced"`, `"cuda"`, ...) and to diffusers' for the
                decoders (`"auto"` becomes diffusers' `"balanced"`).
            variant: load weight files of this variant (`model.<variant>.safetensors`, ...).
            load_decoders: which decoders to load, of `"normal"` (`decoder/`) and `"turbo"` (`decoder-turbo/`);
                missing folders are skipped. Understanding needs none; a text-to-image call uses one.
            kwargs: parts to use instead of loading them, as in diffusers (`image_tokenizer=None` skips the image
                tokenizer, which text-to-image does not need; `model=my_model` reuses a loaded model), and
                `snapshot_download` options for a Hub repository (`revision`, `cache_dir`, `token`, ...).
        """
        dtype = _resolve_dtype(dtype, torch_dtype)
        components = {name: kwargs.pop(name) for name in _COMPONENT_NAMES if name in kwargs}
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(pretrained_model_name_or_path), **kwargs))
        elif kwargs:
            raise TypeError(f"Unexpected arguments for a local folder: {sorted(kwargs)}.")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} holds no config.json: it is not a converted LLaDA2.0-Uni folder.")
        return cls(**cls._load_parts(folder, dtype, load_decoders, device_map, variant, components))

    @classmethod
    def from_released(
        cls,
        released_dir: str | os.PathLike,
        torch_dtype: torch.dtype | None = None,
        load_decoders: Sequence[str] = ("normal", "turbo"),
    ):
        r"""Loads the released `inclusionAI/LLaDA2.0-Uni` folder layout directly (no conversion)."""
        folder = Path(released_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} holds no config.json: it is not a released LLaDA2.0-Uni folder.")
        return cls(**cls._load_parts(folder, torch_dtype, load_decoders))

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        push_to_hub: bool = False,
        **kwargs,
    ):
        r"""
        Writes the converted layout (model, tokenizer and processor at the top, `image_tokenizer/`, `decoder/`,
        `decoder-turbo/`), with a top-level `model_index.json` naming this pipeline and its parts, and a model card.
        The folder appears complete or not at all: it is written next to `save_directory` and moved into place; an
        existing folder is replaced.

        Args:
            save_directory: the folder to write.
            safe_serialization: must be True: weights are written as safetensors only.
            push_to_hub: upload the folder afterwards; `repo_id`, `token`, `private`, `commit_message` and
                `create_pr` are passed on as in diffusers.
        """

        def write(folder: Path):
            self.model.save_pretrained(folder)
            self.processor.save_pretrained(folder)
            if self.image_tokenizer is not None:
                self.image_tokenizer.save_pretrained(folder / IMAGE_TOKENIZER_FOLDER)
            for kind, pipe in (("normal", self.decoder), ("turbo", self.turbo_decoder)):
                if pipe is not None:
                    pipe.save_pretrained(folder / DECODER_FOLDERS[kind], safe_serialization=True)
            components = {name: type(value) if value is not None else None for name, value in self.components.items()}
            # The card carries the license and citation of the folder the language model came from.
            source = getattr(self.model, "name_or_path", None)
            source = source if source and os.path.isdir(source) else None
            write_end_to_end_files(folder, type(self), components, source=source)

        save_folder(self, save_directory, write, safe_serialization, push_to_hub, **kwargs)

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        for pipe in (self.decoder, self.turbo_decoder):
            if pipe is not None:
                pipe.to(*args, **kwargs)
        return self

    def enable_model_cpu_offload(self, gpu_id: int | None = None, device: torch.device | str | None = None):
        r"""
        As diffusers': each part moves to the accelerator when it runs and back when the next one does, so at most one
        of image tokenizer, language model, and the decoder's `vq_embedder`, `transformer`, `vae` is resident at a
        time. The language model stays on the accelerator for all the blocks of a call and leaves before decoding.
        """
        super().enable_model_cpu_offload(gpu_id=gpu_id, device=device)
        for pipe in (self.decoder, self.turbo_decoder):
            if pipe is not None:
                pipe.enable_model_cpu_offload(gpu_id=gpu_id, device=self._offload_device)

    def remove_all_hooks(self):
        super().remove_all_hooks()
        for pipe in (self.decoder, self.turbo_decoder):
            if pipe is not None:
                pipe.remove_all_hooks()

    def enable_sequential_cpu_offload(self, *args, **kwargs):
        raise ValueError(
            "Sequential CPU offload would move the language model's weights layer by layer for every step of every "
            "block. Use `enable_model_cpu_offload()`, or load the model with a `device_map`; the decoders alone "
            "support it (`pipe.decoder.enable_sequential_cpu_offload()`)."
        )

    def _onload(self, module):
        # The language model runs through `generate_*`, which allocates its buffers on `model.device` before its first
        # forward: move it now, as diffusers' `apply_forward_hook` does for `vae.decode`.
        hook = getattr(module, "_hf_hook", None)
        if hook is not None and hasattr(hook, "pre_forward"):
            hook.pre_forward(module)

    def _offload_language_parts(self):
        # The decoders' hooks are a chain of their own; hand the accelerator over to them explicitly.
        for hook in getattr(self, "_all_hooks", None) or []:
            hook.offload()

    def set_progress_bar_config(self, **kwargs):
        r"""As diffusers'; applies to the decoders and (`disable`) to the language model's bar over blocks."""
        super().set_progress_bar_config(**kwargs)
        for pipe in (self.decoder, self.turbo_decoder):
            if pipe is not None:
                pipe.set_progress_bar_config(**kwargs)

    def _generation_kwargs(self, generation_kwargs: dict | None, **settings) -> dict:
        r"""What the language model's method gets: the sampling `settings` the caller gave (the others come from the
        model's generation config), then `generation_kwargs`, and the progress bar setting."""
        kwargs = {name: value for name, value in settings.items() if value is not None}
        for name in sorted(set(kwargs) & set(generation_kwargs or {})):
            raise TypeError(f"`{name}` is given both as an argument and in `generation_kwargs`.")
        kwargs.update(generation_kwargs or {})
        if getattr(self, "_progress_bar_config", {}).get("disable"):
            kwargs.setdefault("show_progress_bar", False)
        return kwargs

    # ------------------------------------------------------------------ shared steps

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def image_token_offset(self) -> int:
        return self.processor.special_token_ids.image_token_offset

    def get_decoder(self, decoder: str | None = None) -> LLaDAUniDecoderPipeline:
        r"""`"turbo"` (8 steps), `"normal"` (50-step original) or `None` (turbo when loaded, else normal)."""
        if decoder is None:
            decoder = "turbo" if self.turbo_decoder is not None else "normal"
        if decoder not in DECODER_FOLDERS:
            raise ValueError(f"`decoder` must be one of {list(DECODER_FOLDERS)} or None, got {decoder!r}.")
        pipe = self.turbo_decoder if decoder == "turbo" else self.decoder
        if pipe is None:
            raise ValueError(
                f"The {decoder} decoder is not loaded (folder `{DECODER_FOLDERS[decoder]}/`); load it or choose the "
                "other one."
            )
        return pipe

    def _check_image_call(self, output_type, decoder, num_inference_steps, guidance_scale, num_images_per_prompt,
                          callback_on_step_end, callback_on_step_end_tensor_inputs, decoder_kwargs):
        r"""The checks of a text-to-image or editing call that need no language model: before it runs, not after."""
        if output_type not in IMAGE_OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {list(IMAGE_OUTPUT_TYPES)}, got {output_type!r}.")
        if output_type != "codes":
            tensor_inputs = None
            if callback_on_step_end is not None and not isinstance(
                callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)
            ):
                tensor_inputs = callback_on_step_end_tensor_inputs
            self.get_decoder(decoder).check_inputs(output_type, num_inference_steps, guidance_scale, tensor_inputs)
        if not _is_int(num_images_per_prompt) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive int, got {num_images_per_prompt!r}.")
        if callback_on_step_end is not None and "callback_on_step_end" in (decoder_kwargs or {}):
            raise TypeError("`callback_on_step_end` is given both as an argument and in `decoder_kwargs`.")

    @staticmethod
    def _lm_generator(generator):
        # The language model samples with one generator; a per-image list only applies to the decoder's noise.
        return generator if isinstance(generator, torch.Generator) else None

    def _language_model_callback(self, callback_on_step_end):
        r"""The pipeline's `callback_on_step_end` as the language model's per-step `callback(step, block, ids)`: it is
        called as `callback_on_step_end(pipeline, step, block, {"image_tokens": codes})`, the codes generated so far
        (`(batch, gen_length)`, -1 where still masked). diffusers' `PipelineCallback` objects act on decoder tensors
        and only see the decoder stage."""
        if callback_on_step_end is None or isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            return None
        offset = self.image_token_offset
        codebook_size = self.processor.special_token_ids.image_codebook_size

        def on_step(step: int, block: int, ids: torch.LongTensor):
            codes = ids - offset
            codes = codes.masked_fill((codes < 0) | (codes >= codebook_size), -1)
            callback_on_step_end(self, step, block, {"image_tokens": codes})

        return on_step

    @staticmethod
    def _decoder_kwargs(decoder_kwargs, callback_on_step_end, callback_on_step_end_tensor_inputs) -> dict:
        kwargs = dict(decoder_kwargs or {})
        if callback_on_step_end is not None:
            kwargs["callback_on_step_end"] = callback_on_step_end
            kwargs["callback_on_step_end_tensor_inputs"] = callback_on_step_end_tensor_inputs
        return kwargs

    def _source_image_sets(
        self, image, image_tokens, mode: str, image_kwargs: dict | None = None, several: bool = False
    ) -> list[list[dict]]:
        r"""
        Pictures or image codes -> one list of `{"image_tokens": ids with offset, "h", "w"}` per prompt. With
        `several`, an item that is itself a list holds one prompt's pictures, which the image processor gives its
        several-images budget; without, every prompt has one picture.
        """
        if (image is None) == (image_tokens is None):
            raise ValueError("Give exactly one of `image` (pictures) and `image_tokens` (their image codes).")
        if isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 4:
            # A batch of pictures, as an `output_type="np"` (B, H, W, 3) or `"pt"` (B, 3, H, W) result holds them.
            image = list(image)
        name = "image" if image is not None else "image_tokens"
        items, _ = _as_list(image if image is not None else image_tokens, name)
        for index, item in enumerate(items):
            if not isinstance(item, (list, tuple)):
                continue
            if not item:
                raise ValueError(f"`{name}[{index}]` is an empty list: a prompt needs at least one picture.")
            if not several and len(item) != 1:
                raise ValueError(
                    f"`{name}[{index}]` holds {len(item)} pictures; this pipeline takes one picture per prompt."
                )
        if image is not None:
            if self.image_tokenizer is None:
                raise ValueError(
                    "Pictures need the image tokenizer model (`image_tokenizer/`); pass `image_tokens` instead."
                )
            with torch.no_grad():
                encoded = self.processor.encode_images(items, self.image_tokenizer, mode=mode, **(image_kwargs or {}))
            return [[dict(e) for e in group] if isinstance(group, list) else [dict(group)] for group in encoded]
        sets = []
        for item in items:
            group = list(item) if isinstance(item, (list, tuple)) else [item]
            if not all(isinstance(i, dict) for i in group):
                raise TypeError(
                    "`image_tokens` must be a dict {'image_tokens': ids, 'h': rows, 'w': columns} (what "
                    "`processor.encode_images` returns; ids carry `image_token_offset`), a list of such dicts (one per "
                    f"prompt) or of lists of dicts (one prompt's images), got {[type(i).__name__ for i in group]}."
                )
            sets.append([self._encoded_from_dict(i) for i in group])
        return sets

    def _encoded_from_dict(self, item: dict) -> dict:
        # `{"codes", "h", "w"}` is the same image without the offset; the ids are checked against the grid by the
        # language model's method, the boundary every path goes through.
        if "codes" in item:
            item = {**item, "image_tokens": self.processor.codes_to_image_ids(item["codes"])}
        [(_, ids, h, w)] = parse_image_inputs(item)[0]
        return {"image_tokens": ids.tolist() if hasattr(ids, "tolist") else list(ids), "h": h, "w": w}

    def _decode_codes(
        self,
        codes: list[torch.LongTensor],
        grids: list[tuple[int, int]],
        decoder: str | None,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        generator,
        output_type: str,
        decoder_kwargs: dict,
    ):
        if output_type == "codes":
            return None
        pipe = self.get_decoder(decoder)
        self._offload_language_parts()
        results: list = [None] * len(codes)
        # One decoder call per grid size: a call decodes one batch of equally sized latents.
        groups = _indices_by_grid(grids)
        for grid, indices in groups.items():
            group_generator = [generator[i] for i in indices] if isinstance(generator, list) else generator
            out = pipe(
                torch.stack([codes[i] for i in indices]),
                grid_size=grid,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=group_generator,
                output_type=output_type,
                **decoder_kwargs,
            ).images
            for position, index in enumerate(indices):
                results[index] = out[position]
        if output_type == "pil" or len(groups) > 1:
            return results
        if output_type == "np":
            return np.stack(results)
        return torch.stack(results)

    def _decode_and_return(self, codes, grids, thinking, decoder, num_inference_steps, guidance_scale, generator,
                           output_type, decoder_kwargs, return_dict):
        """The common end of text-to-image and editing: decode (unless `output_type="codes"`), free the offload
        hooks, and build the output."""
        images = self._decode_codes(
            codes, grids, decoder, num_inference_steps, guidance_scale, generator, output_type, decoder_kwargs
        )
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, codes, grids, thinking)
        return LLaDAUniImagePipelineOutput(images=images, image_tokens=codes, grid_sizes=grids, thinking=thinking)

    def _codes_from_tokens(self, image_tokens, grid_size) -> tuple[list[torch.LongTensor], list[tuple[int, int]]]:
        r"""Decoder input given by the caller (codes without offset), validated by the decoder's rules."""
        codes = prepare_image_codes(image_tokens, grid_size, self.processor.special_token_ids.image_codebook_size)
        grid = tuple(codes.shape[1:])
        return [c.flatten() for c in codes], [grid] * codes.shape[0]

    def _sources_and_prompts(self, image, image_tokens, prompt, mode, image_kwargs, what, several: bool = False):
        """One (source, prompt) pair per output: a single source or prompt is repeated against a list. A source is
        one image dict, or with `several=True` the list of a prompt's image dicts."""
        if prompt is None:
            raise ValueError(f"Give {what} as `prompt`.")
        sets = self._source_image_sets(image, image_tokens, mode, image_kwargs, several)
        prompts, _ = _as_list(prompt, "prompt")
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(f"`prompt` must be a string or a list of strings, got {type(p).__name__}.")
        if not several:
            return _broadcast([group[0] for group in sets], prompts, "images", "prompts")
        given = image if image is not None else image_tokens
        nested = isinstance(given, (list, tuple)) and any(isinstance(item, (list, tuple)) for item in given)
        return _broadcast(sets, prompts, "image sets" if nested else "images", "prompts")


class LLaDAUniTextToImagePipeline(_LLaDAUniPipelineBase):
    r"""
    Text-to-image: prompt -> image codes (the language model, optionally thinking first) -> pixels (the decoder).

    `image_tokens` skips the language model (decode given codes); `output_type="codes"` skips the decoder.

    Example:
        ```py
        >>> pipe = LLaDAUniTextToImagePipeline.from_pretrained("converted", dtype=torch.bfloat16).to("cuda")
        >>> out = pipe("A red fox in the snow", height=1024, width=1024, generator=torch.manual_seed(0))
        >>> out.images[0].save("fox.png")
        ```
    """

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        thinking: bool = False,
        steps: int | None = None,
        block_length: int | None = None,
        cfg_scale: float | None = None,
        temperature: float | None = None,
        use_sprint: bool | None = None,
        generation_kwargs: dict | None = None,
        image_tokens: torch.Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[int]] | None = None,
        grid_size: tuple[int, int] | None = None,
        decoder: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        decoder_kwargs: dict | None = None,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
    ) -> LLaDAUniImagePipelineOutput | tuple:
        r"""
        Args:
            prompt: a text or a list of texts.
            height, width: requested pixels; the grid is `(height // 2) // 16` x `(width // 2) // 16` codes and the
                image `grid * 32` pixels (default: the model's generation config, `image_h` / `image_w`, 1024).
            thinking: let the model reason in text first (returned in `.thinking`).
            steps, block_length, cfg_scale, temperature, use_sprint: the language model's sampling (see
                `generate_image`; default: the model's own, from its generation config); `generation_kwargs` passes
                any other of its options (`generation_config=` among them: the call's settings, then that config's,
                then the model's, as in transformers).
            image_tokens, grid_size: image codes (no offset) to decode instead of generating them; see
                [`LLaDAUniDecoderPipeline.__call__`] for the accepted layouts.
            decoder: `"turbo"`, `"normal"` or `None` (turbo when loaded).
            num_inference_steps, guidance_scale: the decoder's (default: the chosen decoder's own).
            generator: for the decoder's noise (one, or one per image) and, when one, the model's sampling.
            output_type: `"pil"`, `"np"`, `"pt"`, `"latent"` or `"codes"` (no decoding).
            decoder_kwargs: passed on to the decoder call (e.g. `cfg_normalization`).
            negative_prompt: the text of the unconditional guidance branch instead of the original's
                `<uncondition>` (one, or one per prompt); the language model's `generate_image` must take it.
            num_images_per_prompt: images per prompt (or per code sequence), in prompt order. With greedy sampling
                (temperature 0) the copies share their codes and differ by the decoder's noise.
            callback_on_step_end: called after every step of both stages. Language model:
                `callback_on_step_end(pipeline, step, block, {"image_tokens": codes})` with the codes so far
                (`(batch, gen_length)`, -1 where still masked). Decoder: as in diffusers,
                `callback_on_step_end(decoder_pipeline, step, timestep, tensors)` with the tensors named in
                `callback_on_step_end_tensor_inputs`; what it returns replaces them. A diffusers `PipelineCallback`
                sees the decoder stage only.
            callback_on_step_end_tensor_inputs: the decoder tensors the callback gets (see
                [`LLaDAUniDecoderPipeline`]'s `_callback_tensor_inputs`).
        """
        self._check_image_call(
            output_type, decoder, num_inference_steps, guidance_scale, num_images_per_prompt, callback_on_step_end,
            callback_on_step_end_tensor_inputs, decoder_kwargs,
        )
        thinking_texts = None
        if image_tokens is not None:
            if prompt is not None or negative_prompt is not None:
                raise ValueError("Give `prompt` (generate codes) or `image_tokens` (decode these codes), not both.")
            codes, grids = self._codes_from_tokens(image_tokens, grid_size)
            codes, grids = _repeat(codes, num_images_per_prompt), _repeat(grids, num_images_per_prompt)
            check_generators(generator, len(codes))
        else:
            if prompt is None:
                raise ValueError("Give a `prompt` (or `image_tokens` to decode).")
            prompts, _ = _as_list(prompt, "prompt")
            extra = {}
            if negative_prompt is not None:
                negatives, _ = _as_list(negative_prompt, "negative_prompt")
                if len(negatives) == 1:
                    negatives = negatives * len(prompts)
                if len(negatives) != len(prompts):
                    raise ValueError(
                        f"Got {len(prompts)} prompts and {len(negatives)} negative prompts: give one negative prompt, "
                        "or one per prompt."
                    )
                if "negative_prompt" not in inspect.signature(self.model.generate_image).parameters:
                    raise TypeError(
                        "This language model's `generate_image` takes no `negative_prompt` (the unconditional branch's "
                        "text); update `transformers_llada_uni`."
                    )
                extra["negative_prompt"] = _repeat(negatives, num_images_per_prompt)
            prompts = _repeat(prompts, num_images_per_prompt)
            check_generators(generator, len(prompts))
            self._onload(self.model)
            results = self.model.generate_image(
                prompts,
                tokenizer=self.tokenizer,
                image_h=height,
                image_w=width,
                mode="thinking" if thinking else "normal",
                generator=self._lm_generator(generator),
                callback=self._language_model_callback(callback_on_step_end),
                **extra,
                **self._generation_kwargs(
                    generation_kwargs, steps=steps, block_length=block_length, cfg_scale=cfg_scale,
                    temperature=temperature, use_sprint=use_sprint,
                ),
            )
            codes = [r.token_ids.detach().to("cpu", torch.long) for r in results]
            grids = [(int(r.h), int(r.w)) for r in results]
            thinking_texts = [r.thinking for r in results]
        return self._decode_and_return(
            codes, grids, thinking_texts, decoder, num_inference_steps, guidance_scale, generator, output_type,
            self._decoder_kwargs(decoder_kwargs, callback_on_step_end, callback_on_step_end_tensor_inputs),
            return_dict,
        )


class LLaDAUniImageEditPipeline(_LLaDAUniPipelineBase):
    r"""
    Editing: picture + instruction -> new image codes (the language model, three-branch guidance) -> pixels.

    The source is a picture (`image`, cropped to the editing sizes and tokenised by the image tokenizer) or its image
    ids (`image_tokens`, what `processor.encode_images(..., mode="edit")` returns). The output grid is the source grid.
    `output_type="codes"` skips the decoder.
    """

    @torch.no_grad()
    def __call__(
        self,
        image: PictureInput | None = None,
        prompt: str | list[str] | None = None,
        image_tokens: dict[str, Any] | Sequence[dict[str, Any] | Sequence[dict[str, Any]]] | None = None,
        steps: int | None = None,
        block_length: int | None = None,
        cfg_text_scale: float | None = None,
        cfg_image_scale: float | None = None,
        temperature: float | None = None,
        crop_mode: str = "edit",
        image_kwargs: dict | None = None,
        generation_kwargs: dict | None = None,
        decoder: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        decoder_kwargs: dict | None = None,
        num_images_per_prompt: int = 1,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
    ) -> LLaDAUniImagePipelineOutput | tuple:
        r"""
        Args:
            image: a picture (PIL image, path, array) or a list of them; an array `(B, H, W, 3)` or tensor
                `(B, 3, H, W)` holds B pictures (what `output_type="np"` / `"pt"` returns).
            prompt: the instruction, or one per picture (one instruction or one picture is shared by the others).
            image_tokens: instead of `image`, a dict `{"image_tokens": ids, "h", "w"}` (ids with `image_token_offset`,
                as `processor.encode_images` returns; `{"codes": ..., "h", "w"}` takes codes without the offset) or a
                list of them.
            steps, block_length, cfg_text_scale, cfg_image_scale, temperature: the language model's sampling (see
                `edit_image`; default: the model's own); `generation_kwargs` passes any other of its options.
            crop_mode: `"edit"` (the original's centre crop without rescaling) or `"edit_resize_crop"`.
            image_kwargs: options of the image processor (e.g. `{"edit_image_size": 256}` for a smaller crop budget).
            decoder, num_inference_steps, guidance_scale, generator, output_type, decoder_kwargs,
            num_images_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs: as in
                [`LLaDAUniTextToImagePipeline`].
        """
        self._check_image_call(
            output_type, decoder, num_inference_steps, guidance_scale, num_images_per_prompt, callback_on_step_end,
            callback_on_step_end_tensor_inputs, decoder_kwargs,
        )
        if crop_mode not in ("edit", "edit_resize_crop"):
            raise ValueError(f"`crop_mode` must be 'edit' or 'edit_resize_crop', got {crop_mode!r}.")
        sources, prompts = self._sources_and_prompts(
            image, image_tokens, prompt, crop_mode, image_kwargs, "the editing instruction"
        )
        sources, prompts = _repeat(sources, num_images_per_prompt), _repeat(prompts, num_images_per_prompt)
        check_generators(generator, len(sources))
        self._onload(self.model)
        # One batch per source grid size: edits of one size share the canvas and the forwards.
        groups = _indices_by_grid([(source["h"], source["w"]) for source in sources])
        results: list = [None] * len(sources)
        for indices in groups.values():
            edited = self.model.edit_image(
                [sources[i] for i in indices],
                instruction=[prompts[i] for i in indices],
                tokenizer=self.tokenizer,
                generator=self._lm_generator(generator),
                callback=self._language_model_callback(callback_on_step_end),
                **self._generation_kwargs(
                    generation_kwargs, steps=steps, block_length=block_length, cfg_text_scale=cfg_text_scale,
                    cfg_image_scale=cfg_image_scale, temperature=temperature,
                ),
            )
            for index, result in zip(indices, edited):
                results[index] = result
        codes = [result.token_ids.detach().to("cpu", torch.long) for result in results]
        grids = [(int(result.h), int(result.w)) for result in results]
        return self._decode_and_return(
            codes, grids, None, decoder, num_inference_steps, guidance_scale, generator, output_type,
            self._decoder_kwargs(decoder_kwargs, callback_on_step_end, callback_on_step_end_tensor_inputs),
            return_dict,
        )


class LLaDAUniUnderstandingPipeline(_LLaDAUniPipelineBase):
    r"""
    Understanding: picture(s) + question -> text. The picture goes through the understanding resize and the image
    tokenizer, or is given as its image ids (`image_tokens`). A prompt may hold several pictures (a list inside the
    batch), whose image blocks precede the question in order. No decoder is needed.
    """

    @torch.no_grad()
    def __call__(
        self,
        image: PictureInput | None = None,
        prompt: str | list[str] | None = None,
        image_tokens: dict[str, Any] | Sequence[dict[str, Any] | Sequence[dict[str, Any]]] | None = None,
        steps: int | None = None,
        block_length: int | None = None,
        gen_length: int | None = None,
        temperature: float | None = None,
        threshold: float | None = None,
        use_chat_template: bool = False,
        image_kwargs: dict | None = None,
        generation_kwargs: dict | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> LLaDAUniUnderstandingPipelineOutput | tuple:
        r"""
        Args:
            image: a picture (PIL image, path, array) or a list of them, one per prompt; an array `(B, H, W, 3)` or
                tensor `(B, 3, H, W)` holds B pictures (what a text-to-image call with `output_type="np"` / `"pt"`
                returns). An item that is itself a list holds one prompt's several pictures, in order (`[[a, b]]`:
                one prompt about `a` and `b`); they get the image processor's several-images budget
                (`understand_max_pixels_multi`, 448^2 px each).
            prompt: the question, or one per prompt (one question or one picture / list of pictures is shared by the
                others).
            image_tokens: instead of `image`, `{"image_tokens": ids, "h", "w"}` (ids with `image_token_offset`) or
                `{"codes": ..., "h", "w"}`, or a list of them; an item that is a list of such dicts holds one
                prompt's images.
            steps, block_length, gen_length, temperature, threshold: the model's sampling (see `understand_image`;
                default: the model's own).
            use_chat_template: wrap images and question in the chat template (the original uses the bare prompt).
            image_kwargs: options of the image processor's understanding resize.
        """
        image_sets, prompts = self._sources_and_prompts(
            image, image_tokens, prompt, "understand", image_kwargs, "the question", several=True
        )
        self._onload(self.model)
        # One batch: every (images, question) pair is decoded in the same forwards.
        results = self.model.understand_image(
            [sources[0] if len(sources) == 1 else sources for sources in image_sets],
            question=list(prompts),
            tokenizer=self.tokenizer,
            use_chat_template=use_chat_template,
            return_dict=True,
            generator=generator,
            **self._generation_kwargs(
                generation_kwargs, steps=steps, block_length=block_length, gen_length=gen_length,
                temperature=temperature, threshold=threshold,
            ),
        )
        texts = [result.text for result in results]
        sequences = [result.sequences[0].detach().cpu() for result in results]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (texts, sequences)
        return LLaDAUniUnderstandingPipelineOutput(text=texts, sequences=sequences)


__all__ = [
    "LLaDAUniTextToImagePipeline",
    "LLaDAUniImageEditPipeline",
    "LLaDAUniUnderstandingPipeline",
    "LLaDAUniImagePipelineOutput",
    "LLaDAUniUnderstandingPipelineOutput",
]
