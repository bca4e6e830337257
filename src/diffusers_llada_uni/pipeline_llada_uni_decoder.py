# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The LLaDA2.0-Uni image decoder: image codes -> SigVQ features -> Z-Image DiT flow matching -> VAE -> pixels."""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import ZImageLoraLoaderMixin
from diffusers.models.autoencoders import AutoencoderKL
from diffusers.models.transformers import ZImageTransformer2DModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput
from diffusers.pipelines.z_image.pipeline_z_image import retrieve_timesteps
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler, SchedulerMixin
from diffusers.utils import logging, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from safetensors import safe_open

from .modeling_sigvq import SigVQEmbedding
from .saving_llada_uni import LLaDAUniPipelineFolderMixin, save_folder, write_pipeline_files
from .scheduling_llada_uni import LLaDAUniFlowMatchScheduler


logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")

# The original's defaults: 50 time points (49 model calls) with guidance 1.0 and the norm clamp for the
# 50-step decoder; 8 model calls without guidance for the distilled one.
SAMPLER_DEFAULTS = {
    False: {"num_inference_steps": 49, "guidance_scale": 1.0, "cfg_normalization": 1.0},
    True: {"num_inference_steps": 8, "guidance_scale": 0.0, "cfg_normalization": 1.0},
}

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers_llada_uni import LLaDAUniDecoderPipeline

        >>> pipe = LLaDAUniDecoderPipeline.from_pretrained("converted/decoder-turbo", dtype=torch.bfloat16)
        >>> pipe.to("cuda")
        >>> codes = result.token_ids  # h * w image codes from the language model
        >>> image = pipe(codes, grid_size=(32, 32), generator=torch.Generator("cuda").manual_seed(0)).images[0]
        >>> image.size  # 32 * 16 * 2
        (1024, 1024)
        ```
"""


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def make_released_scheduler(turbo: bool) -> LLaDAUniFlowMatchScheduler:
    r"""The scheduler that reproduces the original sampler (`turbo=True`: the distilled 8-step one)."""
    if turbo:
        return LLaDAUniFlowMatchScheduler(shift=1.0, stochastic_sampling=True, time_grid_dtype="float64")
    return LLaDAUniFlowMatchScheduler(shift=6.0, stochastic_sampling=False, time_grid_dtype="float32")


def _released_layout():
    # Imported by name when used: this file also ships as remote code to machines without our packages, where only
    # converted folders are loaded, and diffusers reports every package an import statement names as missing.
    return importlib.import_module("transformers_llada_uni.released_layout_llada_uni")


def _own_aligned(tensor: torch.Tensor) -> torch.Tensor:
    # Tensors read from a file can start at any byte offset of its buffer; CPU matmul kernels pick a different
    # summation order for unaligned operands, which made a pipeline built from the released files differ (~1e-5) from
    # the same weights saved and loaded with `from_pretrained`. A fresh allocation is aligned.
    if tensor.data_ptr() % 64 == 0 and tensor.is_contiguous():
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)


def load_released_transformer(
    decoder_dir: str | os.PathLike, cap_feat_dim: int, torch_dtype: torch.dtype | None = None
) -> ZImageTransformer2DModel:
    r"""
    Loads a released Z-Image decoder folder (`decoder/` or `decoder-turbo/`) into diffusers'
    `ZImageTransformer2DModel`, with the released layout's config fix (`cap_feat_dim` = the SigVQ width, `axes_lens`)
    and key rename (`semantic_embedder.*` -> `cap_embedder.*`).
    """
    layout = _released_layout()
    decoder_dir = Path(decoder_dir)
    config_path = decoder_dir / "config.json"
    if not config_path.is_file():
        raise layout.MissingFileError(f"{config_path} is missing: the decoder's DiT config.")
    config = layout.corrected_transformer_config(layout.read_json(config_path), cap_feat_dim)

    # One tensor at a time (and cast as it is read): peak memory stays at the model's size, not twice that.
    state_dict = {}
    for path in layout.find_decoder_weights(decoder_dir):
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    value = f.get_tensor(key)
                    if torch_dtype is not None:
                        value = value.to(torch_dtype)
                    state_dict[layout.rename_transformer_key(key)] = _own_aligned(value)
        except Exception as err:  # safetensors raises its own error type, without the file name
            raise layout.CheckpointError(f"{path}: cannot be read as safetensors ({err}); is it truncated?") from None

    # Built on the meta device: a random initialisation of the real 6 B-parameter DiT would only be overwritten.
    try:
        with torch.device("meta"):
            transformer = ZImageTransformer2DModel.from_config(config)
    except (AssertionError, TypeError, ValueError) as err:
        raise layout.CheckpointError(f"{config_path}: not a valid Z-Image DiT config ({err!r}).") from None
    expected = set(transformer.state_dict())
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise layout.CheckpointError(
            f"The decoder weights in {decoder_dir} do not fit ZImageTransformer2DModel: missing {missing[:10]}"
            f"{'...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}."
        )
    transformer.load_state_dict(state_dict, strict=True, assign=True)
    return transformer.eval()


def check_grid_size(grid_size: tuple[int, int] | list[int]) -> tuple[int, int]:
    r"""Validates a code grid `(h, w)` of positive ints."""
    if not isinstance(grid_size, (tuple, list)) or len(grid_size) != 2:
        raise TypeError(f"`grid_size` must be a pair (h, w) of ints, got {grid_size!r}.")
    h, w = grid_size
    if not (_is_int(h) and _is_int(w)):
        raise TypeError(f"`grid_size` must be a pair (h, w) of ints, got {grid_size!r}.")
    if h <= 0 or w <= 0:
        raise ValueError(f"`grid_size` must be positive in both directions, got (h, w) = ({h}, {w}).")
    return int(h), int(w)


def check_generators(generator: torch.Generator | list[torch.Generator] | None, num_images: int) -> None:
    r"""A list of generators must hold one per image (diffusers' rule); a single one serves them all."""
    if isinstance(generator, list) and len(generator) != num_images:
        raise ValueError(
            f"Got a list of {len(generator)} generators for {num_images} images: give one per image (after "
            "`num_images_per_prompt`) or a single generator."
        )


def prepare_image_codes(
    image_tokens: torch.Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[int]],
    grid_size: tuple[int, int] | None,
    codebook_size: int,
) -> torch.LongTensor:
    r"""
    Validates image codes and returns them as a `(batch_size, h, w)` LongTensor.

    `image_tokens` is one sequence of `h * w` codes (list of ints, 1-D tensor or array), a batch of them (list of
    sequences, 2-D tensor), or a `(batch_size, h, w)` tensor (then `grid_size` may be left out). Codes are image
    codes, `0 <= code < codebook_size` (language-model ids minus `image_token_offset`).
    """
    if isinstance(image_tokens, np.ndarray):
        image_tokens = torch.from_numpy(image_tokens)
    if isinstance(image_tokens, torch.Tensor):
        if image_tokens.dtype.is_floating_point or image_tokens.dtype.is_complex or image_tokens.dtype == torch.bool:
            raise TypeError(f"`image_tokens` must hold integer codes, got a tensor of dtype {image_tokens.dtype}.")
        codes = image_tokens.to(torch.long)
        if codes.ndim == 1:
            codes = codes[None]
        elif codes.ndim == 3:
            if grid_size is None:
                grid_size = tuple(codes.shape[1:])
            elif isinstance(grid_size, (tuple, list)) and tuple(grid_size) != tuple(codes.shape[1:]):
                # Same number of codes, other grid: decoding would silently render another picture size.
                raise ValueError(
                    f"`image_tokens` has the grid {tuple(codes.shape[1:])} but `grid_size` is {tuple(grid_size)}: "
                    "leave `grid_size` out, or give the codes flat."
                )
            codes = codes.reshape(codes.shape[0], -1)
        elif codes.ndim != 2:
            raise ValueError(
                "`image_tokens` must have shape (h*w,), (batch_size, h*w) or (batch_size, h, w), "
                f"got {tuple(image_tokens.shape)}."
            )
    elif isinstance(image_tokens, Sequence) and not isinstance(image_tokens, (str, bytes)):
        if len(image_tokens) == 0:
            raise ValueError("`image_tokens` is empty.")
        rows = image_tokens if not _is_int(image_tokens[0]) else [image_tokens]
        parsed = []
        for row in rows:
            if isinstance(row, (torch.Tensor, np.ndarray)):
                row = row.tolist()
            if not isinstance(row, Sequence) or not all(_is_int(c) for c in row):
                raise TypeError(
                    "`image_tokens` must be a sequence of int codes or a list of such sequences, got an element "
                    f"{row!r:.80}."
                )
            parsed.append([int(c) for c in row])
        lengths = sorted({len(r) for r in parsed})
        if len(lengths) != 1:
            raise ValueError(
                f"All code sequences of one call must have the same length (one grid per call), got lengths {lengths}."
            )
        codes = torch.tensor(parsed, dtype=torch.long)
    else:
        raise TypeError(
            f"`image_tokens` must be a list of int codes, a list of such lists, a tensor or an array, got "
            f"{type(image_tokens).__name__}."
        )

    if grid_size is None:
        raise ValueError("`grid_size=(h, w)` is required unless `image_tokens` has shape (batch_size, h, w).")
    h, w = check_grid_size(grid_size)
    if codes.shape[1] != h * w:
        raise ValueError(f"Got {codes.shape[1]} codes per image but grid_size (h, w) = ({h}, {w}) needs h * w = {h * w}.")
    if codes.numel() > 0:
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= codebook_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"Image code {bad} is outside the codebook: codes must be in [0, {codebook_size}). Language model ids "
                "carry the `image_token_offset`; subtract it first."
            )
    return codes.reshape(codes.shape[0], h, w)


class _PerCall:
    r"""
    A pipeline attribute that belongs to the call running in the current thread (guidance scale, interrupt flag,
    ...). Two threads calling one pipeline, as a server does, each see their own value; a callback still reads and
    sets it on the pipeline (`pipeline._interrupt = True`), since callbacks run in the calling thread.
    """

    _threads = threading.local()

    def __set_name__(self, owner, name):
        self.name = name

    def _state(self, pipeline) -> dict:
        pipelines = self._threads.__dict__.setdefault("pipelines", weakref.WeakKeyDictionary())
        return pipelines.setdefault(pipeline, {})

    def __get__(self, pipeline, owner=None):
        if pipeline is None:
            return self
        try:
            return self._state(pipeline)[self.name]
        except KeyError:
            raise AttributeError(f"`{self.name}` is set by a call of the pipeline; none ran in this thread.") from None

    def __set__(self, pipeline, value):
        self._state(pipeline)[self.name] = value


class LLaDAUniDecoderPipeline(LLaDAUniPipelineFolderMixin, DiffusionPipeline, ZImageLoraLoaderMixin):
    r"""
    Decodes LLaDA2.0-Uni image codes into images.

    The codes (one per 16 x 16 px of the language model's grid) become caption features through the SigVQ embedding
    (on the grid upsampled 2x), a Z-Image DiT integrates the flow-matching ODE from noise to a latent (`t` from 0 =
    noise to 1 = data; in diffusers' terms `sigma = 1 - t`) conditioned on them, and the VAE renders the latent. A
    grid of `h x w` codes gives an image of `h * 16 * f` x `w * 16 * f` pixels, `f = vq_embedder.config.upsample_factor`.

    Two samplers, chosen by the scheduler: the 50-step decoder (Euler, time shift 6, guidance against zero caption
    features with the norm clamp) and the distilled turbo decoder (`stochastic_sampling`: re-noise every step, no
    guidance). `turbo` only selects the default number of steps and guidance.

    Args:
        vq_embedder ([`SigVQEmbedding`]): image codes -> caption features.
        transformer ([`ZImageTransformer2DModel`]): the DiT; its `cap_feat_dim` is the SigVQ width.
        vae ([`AutoencoderKL`]): the Flux VAE.
        scheduler ([`SchedulerMixin`]): [`LLaDAUniFlowMatchScheduler`] reproduces the original; any flow-matching
            diffusers scheduler can be swapped in (`FlowMatchEulerDiscreteScheduler`, `FlowMatchHeunDiscreteScheduler`,
            `DPMSolverMultistepScheduler` / `UniPCMultistepScheduler` with `use_flow_sigmas=True,
            prediction_type="flow_prediction"`); README says which give the released results.
        turbo (`bool`): the components are the distilled decoder's (defaults: 8 steps, no guidance).
    """

    model_cpu_offload_seq = "vq_embedder->transformer->vae"
    _optional_components = []
    _callback_tensor_inputs = ["latents", "caption_features", "negative_caption_features"]
    _guidance_scale = _PerCall()
    _attention_kwargs = _PerCall()
    _interrupt = _PerCall()
    _num_timesteps = _PerCall()

    def __init__(
        self,
        vq_embedder: SigVQEmbedding,
        transformer: ZImageTransformer2DModel,
        vae: AutoencoderKL,
        scheduler: SchedulerMixin,
        turbo: bool = False,
    ):
        super().__init__()
        if vq_embedder is not None and transformer is not None:
            width, cap_dim = vq_embedder.config.embedding_dim, transformer.config.cap_feat_dim
            if width != cap_dim:
                raise ValueError(
                    f"The transformer's `cap_feat_dim` ({cap_dim}) must equal the SigVQ width ({width}); the released "
                    "decoder config files are wrong about it, load them with `LLaDAUniDecoderPipeline.from_released`."
                )
        self.register_modules(vq_embedder=vq_embedder, transformer=transformer, vae=vae, scheduler=scheduler)
        self.register_to_config(turbo=bool(turbo))
        self.vae_scale_factor = (
            2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) is not None else 8
        )
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2)

    # ------------------------------------------------------------------ loading from the released layout

    @classmethod
    def from_released(
        cls,
        released_dir: str | os.PathLike,
        turbo: bool = False,
        torch_dtype: torch.dtype | None = None,
    ) -> "LLaDAUniDecoderPipeline":
        r"""
        Builds the decoder from the released `inclusionAI/LLaDA2.0-Uni` folder layout.

        Reads `image_tokenizer/sigvq_embedding.pt` (a plain `torch.save` state dict, read with `weights_only=True`),
        `decoder/` (or `decoder-turbo/` with `turbo=True`, weight file `decoder_model.safetensors` or
        `model.safetensors`) and `vae/`. Save the result with `save_pretrained` to get the converted layout.

        Args:
            released_dir: the released checkpoint folder.
            turbo: load the distilled 8-step decoder instead of the 50-step one.
            torch_dtype: cast every component to this dtype (default: keep the stored dtypes).
        """
        layout = _released_layout()
        released_dir = Path(released_dir)
        sigvq_state_dict = layout.read_sigvq_state_dict(released_dir)
        if torch_dtype is not None:
            sigvq_state_dict = {k: v.to(torch_dtype) for k, v in sigvq_state_dict.items()}
        vq_embedder = SigVQEmbedding.from_released_state_dict({k: _own_aligned(v) for k, v in sigvq_state_dict.items()})
        transformer = load_released_transformer(
            layout.released_decoder_dir(released_dir, turbo), vq_embedder.config.embedding_dim, torch_dtype=torch_dtype
        )
        vae_dir = released_dir / layout.VAE_DIR
        for name, what in (("config.json", "the VAE config"), (layout.DIFFUSERS_WEIGHTS_NAME, "the VAE weights")):
            if not (vae_dir / name).is_file():
                raise layout.MissingFileError(f"{vae_dir / name} is missing: {what} (only safetensors are read).")
        layout.read_json(vae_dir / "config.json")
        try:
            vae = AutoencoderKL.from_pretrained(vae_dir, dtype=torch_dtype, use_safetensors=True)
        except Exception as err:  # a truncated file surfaces as safetensors' own error, without the file name
            raise layout.CheckpointError(
                f"{vae_dir / layout.DIFFUSERS_WEIGHTS_NAME}: cannot load the VAE ({err}); is the file truncated?"
            ) from None
        pipe = cls(
            vq_embedder=vq_embedder.eval(),
            transformer=transformer,
            vae=vae.eval(),
            scheduler=make_released_scheduler(turbo),
            turbo=turbo,
        )
        # As `from_pretrained` does: where the pipeline came from (its model card tells a saved copy the license).
        pipe.register_to_config(_name_or_path=str(released_dir))
        return pipe

    # ------------------------------------------------------------------ saving

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> None:
        r"""
        As [`DiffusionPipeline.save_pretrained`], and the folder carries this pipeline's code (so
        `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` loads it without our package) and a model
        card. It appears complete or not at all: written next to `save_directory`, then moved into place (an existing
        folder is replaced).

        Args:
            save_directory: the folder to write.
            safe_serialization: must be True: weights are written as safetensors only.
            variant, max_shard_size: as diffusers'.
            push_to_hub: upload the folder afterwards; `repo_id`, `token`, `private`, `commit_message` and
                `create_pr` are passed on as in diffusers.
        """

        def write(folder: Path):
            DiffusionPipeline.save_pretrained(self, folder, variant=variant, max_shard_size=max_shard_size)
            write_pipeline_files(self, folder, source=self.name_or_path)

        save_folder(self, save_directory, write, safe_serialization, push_to_hub, **kwargs)

    # ------------------------------------------------------------------ LoRA: safetensors only

    @classmethod
    def lora_state_dict(
        cls, pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, torch.Tensor], **kwargs: Any
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
        # diffusers falls back to pickled `.bin` LoRA files when `use_safetensors` is left unset.
        kwargs.setdefault("use_safetensors", True)
        return super().lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 0

    @property
    def attention_kwargs(self) -> dict[str, Any] | None:
        return self._attention_kwargs

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def codebook_size(self) -> int:
        return self.vq_embedder.config.num_embeddings

    def image_size_for_grid(self, grid_size: tuple[int, int]) -> tuple[int, int]:
        r"""`(height, width)` in pixels of the image decoded from a grid of `grid_size = (h, w)` codes."""
        h, w = self._check_grid_size(grid_size)
        scale = self._pixels_per_code()
        return h * scale, w * scale

    def _pixels_per_code(self) -> int:
        patch = self.transformer.config.all_patch_size[0] if self.transformer is not None else 2
        return self.vq_embedder.config.upsample_factor * patch * self.vae_scale_factor

    # ------------------------------------------------------------------ input handling

    @staticmethod
    def _check_grid_size(grid_size) -> tuple[int, int]:
        return check_grid_size(grid_size)

    def prepare_image_tokens(
        self,
        image_tokens: torch.Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[int]],
        grid_size: tuple[int, int] | None = None,
    ) -> torch.LongTensor:
        r"""Validated codes `(batch_size, h, w)`: see [`prepare_image_codes`]; the codebook is the SigVQ's."""
        return prepare_image_codes(image_tokens, grid_size, self.codebook_size)

    @torch.no_grad()
    def encode_image_tokens(
        self,
        image_tokens: torch.Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[int]],
        grid_size: tuple[int, int] | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        r"""The caption features `(batch_size, (h*f) * (w*f), width)` of the codes (the analogue of `encode_prompt`)."""
        device = device or self._execution_device
        codes = self.prepare_image_tokens(image_tokens, grid_size)
        features = self.vq_embedder(codes.to(device))
        return features.to(dtype or self.transformer.dtype)

    def prepare_latents(
        self,
        batch_size: int,
        num_channels_latents: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Initial noise `(batch_size, C, height, width)` in latent pixels (Z-Image's 4-D layout)."""
        shape = (batch_size, num_channels_latents, height, width)
        check_generators(generator, batch_size)
        if latents is None:
            return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if not isinstance(latents, torch.Tensor):
            raise TypeError(f"`latents` must be a torch.Tensor, got {type(latents).__name__}.")
        if tuple(latents.shape) != shape:
            raise ValueError(f"`latents` must have shape {shape} for this grid and batch, got {tuple(latents.shape)}.")
        return latents.to(device=device, dtype=dtype)

    def check_inputs(
        self,
        output_type: str,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
    ) -> None:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {list(OUTPUT_TYPES)}, got {output_type!r}.")
        if num_inference_steps is not None and (not _is_int(num_inference_steps) or num_inference_steps < 1):
            raise ValueError(f"`num_inference_steps` must be a positive int, got {num_inference_steps!r}.")
        if guidance_scale is not None and (not isinstance(guidance_scale, (int, float)) or guidance_scale < 0):
            raise ValueError(f"`guidance_scale` must be a number >= 0, got {guidance_scale!r}.")
        if callback_on_step_end_tensor_inputs is not None:
            unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
            if unknown:
                raise ValueError(
                    f"`callback_on_step_end_tensor_inputs` asks for {unknown}; this pipeline offers "
                    f"{self._callback_tensor_inputs}."
                )

    @staticmethod
    def _set_timesteps(scheduler, num_inference_steps, sigmas, device):
        r"""
        Sets the call's schedule and returns `(timesteps, data_timesteps)`, the scheduler's timesteps and the `t` the
        DiT is called with. Any diffusers scheduler works: what its `set_timesteps` accepts is inspected (as diffusers'
        `retrieve_timesteps` does); without custom `sigmas` it uses its own spacing, except the stock flow-matching
        Euler scheduler, which gets the original's uniform grid (shifted by its own config).
        """
        if (
            sigmas is None
            and isinstance(scheduler, FlowMatchEulerDiscreteScheduler)
            and not isinstance(scheduler, LLaDAUniFlowMatchScheduler)
        ):
            sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]
        timesteps, _ = retrieve_timesteps(
            scheduler, None if sigmas is not None else num_inference_steps, device, sigmas=sigmas
        )
        data_timesteps = getattr(scheduler, "data_timesteps", None)
        if data_timesteps is None:
            if getattr(scheduler, "sigmas", None) is not None:
                data_timesteps = 1.0 - scheduler.sigmas[: len(timesteps)]
            else:
                data_timesteps = 1.0 - timesteps / scheduler.config.num_train_timesteps
        return timesteps, data_timesteps.to(device=device, dtype=torch.float32)

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        image_tokens: torch.Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[int]] | None = None,
        grid_size: tuple[int, int] | None = None,
        num_inference_steps: int | None = None,
        sigmas: list[float] | None = None,
        guidance_scale: float | None = None,
        cfg_normalization: float | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        step_noises: Sequence[torch.Tensor] | None = None,
        caption_features: torch.Tensor | None = None,
        negative_caption_features: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[int, int, dict], dict] | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
    ) -> ImagePipelineOutput | tuple:
        r"""
        Decodes image codes into images.

        Args:
            image_tokens: the codes, `0 <= code < codebook_size`: one sequence of `h * w` codes in raster order, a batch
                of them (list of lists or `(batch_size, h*w)` tensor) or a `(batch_size, h, w)` tensor. All images of
                one call share one grid.
            grid_size (`(h, w)`): the code grid; optional when `image_tokens` is `(batch_size, h, w)`.
            num_inference_steps (`int`): number of scheduler steps (default 49 for the 50-step decoder, whose original
                `num_steps=50` counts time points, and 8 for turbo); one DiT evaluation each, except for second-order
                schedulers such as Heun's (`2 * num_inference_steps - 1`).
            sigmas (`list[float]`, *optional*): custom noise levels (`sigma = 1 - t`), passed to the scheduler.
            guidance_scale (`float`): `pred = p + s * (p - n)` against zero caption features `n` (default 1.0; turbo
                0, no guidance). Guidance runs when `s > 0`.
            cfg_normalization (`float`): clamp `||pred|| <= c * ||p||` per image (default 1.0; 0 turns it off).
            num_images_per_prompt (`int`): images per code sequence.
            generator: `torch.Generator` or a list of one per image (after `num_images_per_prompt`), for the initial
                noise and the turbo re-noising.
            latents (`torch.Tensor`, *optional*): initial noise `(batch, 16, h*f*2, w*f*2)`; drawn from `generator`
                otherwise.
            step_noises (sequence of tensors, *optional*): turbo only, the re-noising noise of every step, each shaped
                like `latents`; drawn from `generator` otherwise.
            caption_features / negative_caption_features (`torch.Tensor`, *optional*): precomputed features instead of
                `image_tokens` (then `grid_size` is required) / instead of zeros.
            output_type (`str`): `"pil"`, `"np"`, `"pt"` (images in [0, 1]) or `"latent"` (the final latent, before the
                VAE scaling).
            return_dict (`bool`): return an [`ImagePipelineOutput`] instead of a tuple.
            attention_kwargs (`dict`, *optional*): passed to the transformer (e.g. `{"scale": 0.5}` for LoRA).
            callback_on_step_end: called as `callback_on_step_end(self, step, timestep, callback_kwargs)` after every
                step, with `callback_kwargs` holding the tensors named in `callback_on_step_end_tensor_inputs` (from
                `_callback_tensor_inputs`); tensors it returns replace the pipeline's.

        Examples:
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        defaults = SAMPLER_DEFAULTS[bool(self.config.turbo)]
        num_inference_steps = defaults["num_inference_steps"] if num_inference_steps is None else num_inference_steps
        guidance_scale = defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        cfg_normalization = defaults["cfg_normalization"] if cfg_normalization is None else cfg_normalization
        self.check_inputs(output_type, num_inference_steps, guidance_scale, callback_on_step_end_tensor_inputs)
        if not _is_int(num_images_per_prompt) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive int, got {num_images_per_prompt!r}.")

        self._guidance_scale = float(guidance_scale)
        self._attention_kwargs = attention_kwargs
        self._interrupt = False
        device = self._execution_device
        transformer_dtype = self.transformer.dtype

        # 1. Caption features from the codes.
        if caption_features is None:
            if image_tokens is None:
                raise ValueError("Pass `image_tokens` (image codes) or `caption_features`.")
            codes = self.prepare_image_tokens(image_tokens, grid_size)
            grid_h, grid_w = codes.shape[1:]
            caption_features = self.vq_embedder(codes.to(device)).to(transformer_dtype)
        else:
            if image_tokens is not None:
                raise ValueError("Pass either `image_tokens` or `caption_features`, not both.")
            if grid_size is None:
                raise ValueError("`grid_size=(h, w)` is required with `caption_features`.")
            grid_h, grid_w = self._check_grid_size(grid_size)
            f = self.vq_embedder.config.upsample_factor
            expected = (grid_h * f * grid_w * f, self.transformer.config.cap_feat_dim)
            if caption_features.ndim != 3 or tuple(caption_features.shape[1:]) != expected:
                raise ValueError(
                    f"`caption_features` must have shape (batch_size, {expected[0]}, {expected[1]}) for grid "
                    f"({grid_h}, {grid_w}), got {tuple(caption_features.shape)}."
                )
            caption_features = caption_features.to(device=device, dtype=transformer_dtype)
        caption_features = caption_features.repeat_interleave(num_images_per_prompt, dim=0)
        batch_size = caption_features.shape[0]

        if self.do_classifier_free_guidance:
            if negative_caption_features is None:
                negative_caption_features = torch.zeros_like(caption_features)
            else:
                negative_caption_features = negative_caption_features.to(device=device, dtype=transformer_dtype)
                negative_caption_features = negative_caption_features.repeat_interleave(num_images_per_prompt, dim=0)
                if negative_caption_features.shape != caption_features.shape:
                    raise ValueError(
                        f"`negative_caption_features` must have shape {tuple(caption_features.shape)} after "
                        f"`num_images_per_prompt`, got {tuple(negative_caption_features.shape)}."
                    )

        # 2. Initial noise.
        patch = self.transformer.config.all_patch_size[0]
        f = self.vq_embedder.config.upsample_factor
        latents = self.prepare_latents(
            batch_size,
            self.transformer.config.in_channels,
            grid_h * f * patch,
            grid_w * f * patch,
            torch.float32,
            device,
            generator,
            latents,
        )

        # 3. Timesteps, on a copy of the scheduler: its step index and schedule belong to this call, so concurrent
        # calls of one pipeline do not advance each other's.
        scheduler = copy.deepcopy(self.scheduler)
        timesteps, data_timesteps = self._set_timesteps(scheduler, num_inference_steps, sigmas, device)
        num_inference_steps = len(timesteps)
        self._num_timesteps = num_inference_steps
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)
        step_parameters = inspect.signature(scheduler.step).parameters
        if step_noises is not None:
            if not getattr(scheduler.config, "stochastic_sampling", False):
                raise ValueError("`step_noises` is only used by a re-noising (turbo) scheduler; this one is deterministic.")
            if "noise" not in step_parameters:
                raise TypeError(
                    f"`step_noises` needs a scheduler whose `step` takes `noise` (LLaDAUniFlowMatchScheduler), got "
                    f"{type(scheduler).__name__}."
                )
            if len(step_noises) != num_inference_steps:
                raise ValueError(f"`step_noises` needs {num_inference_steps} tensors (one per step), got {len(step_noises)}.")
            for i, noise in enumerate(step_noises):
                if tuple(noise.shape) != tuple(latents.shape):
                    raise ValueError(
                        f"`step_noises[{i}]` must have the latents' shape {tuple(latents.shape)}, got {tuple(noise.shape)}."
                    )

        # 4. Denoising loop.
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                t_model = data_timesteps[i].expand(batch_size)
                latent_input = latents.to(transformer_dtype)
                captions = list(caption_features.unbind(0))
                apply_cfg = self.do_classifier_free_guidance
                if apply_cfg:
                    # Both branches in one forward: the DiT takes a list and masks each item's padding.
                    latent_input = torch.cat([latent_input, latent_input])
                    captions = captions + list(negative_caption_features.unbind(0))
                    t_model = t_model.repeat(2)
                out = self.transformer(
                    list(latent_input.unsqueeze(2).unbind(0)),
                    t_model,
                    captions,
                    return_dict=False,
                    joint_attention_kwargs=self.attention_kwargs,
                )[0]
                velocity = torch.stack([o.float() for o in out]).squeeze(2)
                if apply_cfg:
                    positive, negative = velocity.chunk(2)
                    velocity = positive + self.guidance_scale * (positive - negative)
                    if cfg_normalization and cfg_normalization > 0:
                        max_norm = torch.linalg.vector_norm(positive.flatten(1), dim=1) * float(cfg_normalization)
                        norm = torch.linalg.vector_norm(velocity.flatten(1), dim=1)
                        scale = torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm))
                        velocity = velocity * scale.view(-1, 1, 1, 1)

                # The DiT predicts `data - noise`; diffusers' flow-matching schedulers step along `noise - data`.
                step_kwargs = {"generator": generator} if "generator" in step_parameters else {}
                if step_noises is not None:
                    step_kwargs["noise"] = step_noises[i]
                latents = scheduler.step(-velocity, t, latents, return_dict=False, **step_kwargs)[0]

                if callback_on_step_end is not None:
                    offered = {
                        "latents": latents,
                        "caption_features": caption_features,
                        "negative_caption_features": negative_caption_features,
                    }
                    callback_kwargs = {k: offered[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                    caption_features = callback_outputs.pop("caption_features", caption_features)
                    negative_caption_features = callback_outputs.pop(
                        "negative_caption_features", negative_caption_features
                    )
                progress_bar.update()

        # 5. Decode.
        if output_type == "latent":
            image = latents
        else:
            latents = latents.to(self.vae.dtype)
            latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
            image = self.vae.decode(latents, return_dict=False)[0]
            image = self.image_processor.postprocess(image, output_type=output_type)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)


def convert_released_decoder(
    released_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    turbo: bool = False,
    torch_dtype: torch.dtype | None = None,
    safe_serialization: bool = True,
) -> Path:
    r"""
    Writes the released decoder (`turbo=False`: `decoder/`, `True`: `decoder-turbo/`) as a diffusers pipeline folder
    at `output_dir` (see [`LLaDAUniDecoderPipeline.save_pretrained`]).
    """
    pipe = LLaDAUniDecoderPipeline.from_released(released_dir, turbo=turbo, torch_dtype=torch_dtype)
    pipe.save_pretrained(output_dir, safe_serialization=safe_serialization)
    return Path(output_dir)
