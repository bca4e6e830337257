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
        self._decoders = {}

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
        from transformers import AutoProcessor, AutoTokenizer

        from transformers_llada_uni.image_processing_llada_uni import LLaDAUniImageProcessor
        from transformers_llada_uni.processing_llada_uni import LLaDAUniProcessor

        if self.layout == "converted":
            return AutoProcessor.from_pretrained(self.path)
        tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        return LLaDAUniProcessor(image_processor=LLaDAUniImageProcessor(), tokenizer=tokenizer)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @cached_property
    def image_tokenizer(self):
        from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageTokenizerModel

        self.log(f"Loading the image tokenizer from {self.path / IMAGE_TOKENIZER_DIR} ...")
        model = LLaDAUniImageTokenizerModel.from_pretrained(self.path / IMAGE_TOKENIZER_DIR, **self._load_kwargs())
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

    def tokenize_image(self, image, mode: str):
        """Image codes `(h, w)` of a PIL image or path, with the understanding resize or the editing crop."""
        inputs = self.processor.image_processor(image, mode=mode, return_tensors="pt")
        output = self.image_tokenizer.encode(inputs["pixel_values"], inputs["image_grid_thw"])
        return output.codes_per_image()[0].cpu()

    def decode(self, codes: torch.Tensor, turbo: bool, seed: int, steps: int | None = None):
        """A PIL image from a `(h, w)` grid of image codes."""
        pipe = self.decoder(turbo)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        output = pipe(image_tokens=codes[None].to(torch.long), num_inference_steps=steps, generator=generator,
                      output_type="pil")
        return output.images[0]
