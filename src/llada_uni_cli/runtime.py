# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Loading a model folder (converted or released) for the subcommands, and the steps they share.

A converted folder (`llada-uni convert`) loads every part with `from_pretrained`; a released folder is read with the
packages' released-layout loaders. Parts load on first use, so `understand` never loads the image decoder.
"""

from __future__ import annotations

import json
import sys
from functools import cached_property
from pathlib import Path

import torch

from .convert import IMAGE_TOKENIZER_DIR, parse_dtype


RANDOM_WEIGHTS_BANNER = (
    "NOTE: this model has RANDOM weights (a tiny demo model); its images and text are noise, not results."
)


def detect_layout(path: Path) -> str:
    """'converted' or 'released', from the backbone config's model type."""
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{path} is not a LLaDA2.0-Uni folder: it has no config.json.")
    with open(config_path, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    if model_type == "llada_uni":
        return "converted"
    if model_type == "llada2_moe":
        return "released"
    raise ValueError(
        f"{config_path}: model_type {model_type!r} is neither 'llada_uni' (converted) nor 'llada2_moe' (released)."
    )


def is_random_weights(path: Path) -> bool:
    """Demo models say so in their config (`llada_uni_random_weights`); the CLI then labels every output."""
    with open(Path(path) / "config.json", encoding="utf-8") as f:
        return bool(json.load(f).get("llada_uni_random_weights", False))


class ModelBundle:
    """The backbone, processor, image tokenizer and decoders of one folder, each loaded when first needed."""

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str | None = "auto", progress: bool = True,
                 log=None):
        import transformers_llada_uni  # noqa: F401  (Auto registration)

        self.path = Path(path)
        self.layout = detect_layout(self.path)
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype)
        self.progress = progress
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.random_weights = is_random_weights(self.path)
        if not progress:
            # --no-progress silences the libraries' loading bars too, not only generation and decoding.
            from diffusers.utils import logging as diffusers_logging
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            diffusers_logging.disable_progress_bar()
        self._decoders = {}
        # Editing crops hold at most (edit_image_size / 32)^2 cells; None keeps the processor's own setting.
        self.edit_image_size = None

    def _load_kwargs(self):
        return {"dtype": self.dtype if self.dtype is not None else "auto"}

    @cached_property
    def model(self):
        from transformers import AutoModelForCausalLM

        self.log(f"Loading the language model from {self.path} ...")
        # A released config's auto_map names remote code that is not shipped; this package provides the classes.
        model = AutoModelForCausalLM.from_pretrained(self.path, trust_remote_code=False, **self._load_kwargs())
        return model.to(self.device).eval()

    @cached_property
    def processor(self):
        from transformers import AutoProcessor

        from transformers_llada_uni.processing_llada_uni import LLaDAUniProcessor

        if self.layout == "converted":
            return AutoProcessor.from_pretrained(self.path)
        # The processor reads the released layout itself (tokenizer at the top, image settings in image_tokenizer/).
        return LLaDAUniProcessor.from_pretrained(self.path, trust_remote_code=False)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @cached_property
    def image_tokenizer(self):
        from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

        self.log(f"Loading the image tokenizer from {self.path / IMAGE_TOKENIZER_DIR} ...")
        model = LLaDAUniImageVQModel.from_pretrained(self.path / IMAGE_TOKENIZER_DIR, **self._load_kwargs())
        return model.to(self.device).eval()

    def decoder(self, turbo: bool):
        """The turbo (8-step) or normal (50-step) decoder pipeline."""
        if turbo not in self._decoders:
            from diffusers_llada_uni import LLaDAUniDecoderPipeline

            folder = "decoder-turbo" if turbo else "decoder"
            if self.layout == "converted":
                if not (self.path / folder).is_dir():
                    raise ValueError(f"{self.path} has no {folder}/ folder; choose the other --decoder.")
                self.log(f"Loading the image decoder from {self.path / folder} ...")
                pipe = LLaDAUniDecoderPipeline.from_pretrained(self.path / folder, torch_dtype=self.dtype)
            else:
                self.log(f"Loading the image decoder ({folder}) from {self.path} ...")
                pipe = LLaDAUniDecoderPipeline.from_released(self.path, turbo=turbo, torch_dtype=self.dtype)
            pipe.set_progress_bar_config(disable=not self.progress, desc=f"Decoding ({folder})")
            self._decoders[turbo] = pipe.to(self.device)
        return self._decoders[turbo]

    def has_decoder(self, turbo: bool) -> bool:
        folder = "decoder-turbo" if turbo else "decoder"
        return (self.path / folder).is_dir()

    # ------------------------------------------------------------------ steps shared by the subcommands

    def encode_image(self, image, mode: str) -> dict:
        """`{"image_tokens", "h", "w"}` of a picture (path or PIL image; lists nest as in `encode_images`): the
        understanding resize or the editing crop, the image tokenizer, plus `image_token_offset` (the arguments of
        `understand_image` / `edit_image`)."""
        kwargs = {}
        if mode.startswith("edit") and self.edit_image_size is not None:
            kwargs["edit_image_size"] = self.edit_image_size
        with torch.no_grad():
            return self.processor.encode_images(image, self.image_tokenizer, mode=mode, **kwargs)

    def generation_kwargs(self) -> dict:
        """What every generation call of the subcommands passes: the tokenizer (prompts and, for a released folder,
        the mask id) and the progress bar setting."""
        return {"tokenizer": self.tokenizer, "show_progress_bar": self.progress}

    def decode(self, codes: torch.Tensor, turbo: bool, seed: int, steps: int | None = None):
        """A PIL image from a `(h, w)` grid of image codes."""
        pipe = self.decoder(turbo)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        codes = torch.as_tensor(codes, dtype=torch.long)
        output = pipe(image_tokens=codes[None], num_inference_steps=steps, generator=generator, output_type="pil")
        return output.images[0]


def save_codes(path: Path, codes, h: int, w: int, **extra) -> None:
    """Image codes as JSON (`llada-uni decode --codes` reads it back)."""
    data = {"token_ids": [int(c) for c in torch.as_tensor(codes).flatten().tolist()], "h": int(h), "w": int(w)}
    data.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def load_codes(path: Path) -> tuple[torch.LongTensor, int, int]:
    """`(codes as an (h, w) tensor, h, w)` from a JSON file with `token_ids` (codes, no offset), `h` and `w`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict) or not {"token_ids", "h", "w"} <= set(data):
        raise ValueError(f"{path}: expected a JSON object with `token_ids` (image codes), `h` and `w`.")
    h, w, codes = data["h"], data["w"], data["token_ids"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise ValueError(f"{path}: `h` and `w` must be positive integers, got {h!r} and {w!r}.")
    if not isinstance(codes, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        raise ValueError(f"{path}: `token_ids` must be a list of integer image codes.")
    if len(codes) != h * w:
        raise ValueError(f"{path}: {len(codes)} codes, but the grid h={h} x w={w} needs {h * w}.")
    return torch.tensor(codes, dtype=torch.long).view(h, w), h, w


def output_path(value: str | Path, suffix: str = ".png") -> Path:
    path = Path(value)
    if path.suffix.lower() != suffix:
        raise ValueError(f"output file {str(path)!r} must end in {suffix}.")
    if path.exists() and path.is_dir():
        raise ValueError(f"output file {str(path)!r} is a folder.")
    return path


def save_image(image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed: a reader never sees half a PNG.
    tmp = path.with_name(f".{path.name}.partial")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path
