# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The image tokenizer: released `image_tokenizer/` (GLM-Image config, `model.visual.*` / `model.vqmodel.*` keys plus
unrelated ones) -> a `LLaDAUniImageVQModel` folder (`config.json` with `model_type "llada_uni_image_tokenizer"`,
`model.safetensors` holding exactly the model's keys, code files for `trust_remote_code`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers_llada_uni.released_layout_llada_uni import (
    IMAGE_TOKENIZER_DIR,
    RELEASED_IMAGE_TOKENIZER_WEIGHTS_NAME,
    CheckpointError,
)

from .remote_code import add_remote_code
from .safetensors_stream import read_header
from .verification import compare, float_tolerance, release_memory
from .weights import WeightPlan, check_shapes, meta_shapes, require, write_weights

if TYPE_CHECKING:
    from tqdm.auto import tqdm


@dataclass
class ImageTokenizerPlan:
    src_dir: Path
    config: object  # LLaDAUniImageVQConfig
    weights: WeightPlan

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size


def inspect_image_tokenizer(src: Path) -> ImageTokenizerPlan:
    from transformers_llada_uni.configuration_llada_uni_image_tokenizer import LLaDAUniImageVQConfig
    from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

    folder = src / IMAGE_TOKENIZER_DIR
    require(folder / "config.json", "the image tokenizer config")
    weights_path = require(folder / RELEASED_IMAGE_TOKENIZER_WEIGHTS_NAME, "the image tokenizer weights")
    try:
        config = LLaDAUniImageVQConfig.from_pretrained(folder)
    except (TypeError, ValueError, OSError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: {err}") from None
    # Same rule as the model's loader: `model.` is its base-model prefix, everything else belongs to GLM-Image's LM.
    prefix = LLaDAUniImageVQModel.base_model_prefix + "."
    keep = re.compile(rf"^({re.escape(prefix)})?(visual|vqmodel)\.")
    found = {}
    for name, info in read_header(weights_path).items():
        if keep.match(name):
            found[name[len(prefix):] if name.startswith(prefix) else name] = info
    with torch.device("meta"):
        expected = meta_shapes(LLaDAUniImageVQModel(config))
    check_shapes(found, expected, str(weights_path))
    return ImageTokenizerPlan(folder, config, WeightPlan({"model.safetensors": sorted(found.items())}))


def write_image_tokenizer(plan: ImageTokenizerPlan, out: Path, dtype: torch.dtype | None, progress: tqdm | None,
                          include_remote_code: bool = True) -> None:
    from transformers_llada_uni.configuration_llada_uni_image_tokenizer import LLaDAUniImageVQConfig
    from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

    out.mkdir(parents=True, exist_ok=True)
    config = plan.config
    config.architectures = [LLaDAUniImageVQModel.__name__]
    if dtype is not None:
        config.dtype = dtype
    if include_remote_code:
        add_remote_code(config, {"AutoConfig": LLaDAUniImageVQConfig, "AutoModel": LLaDAUniImageVQModel}, out)
    # The released file name must not leak into the converted config: there the weights are `model.safetensors`.
    if hasattr(config, "transformers_weights"):
        del config.transformers_weights
    config.to_json_file(out / "config.json", use_diff=True)
    write_weights(plan.weights, out, dtype, progress=progress)


def verify_image_tokenizer(plan: ImageTokenizerPlan, out: Path, dtype: torch.dtype | None, device: str | torch.device,
                           generator: torch.Generator) -> list[str]:
    """Codes and features of the converted and the released image tokenizer on random patches."""
    from transformers import AutoModel

    from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

    problems = []
    vision = plan.config.vision_config
    grids = torch.tensor([[1, 3, 5], [1, 4, 2]])
    patches = int(grids.prod(-1).sum())
    pixel_values = torch.rand(patches, vision.in_channels * vision.patch_size**2, generator=generator) * 2 - 1
    load = {"dtype": dtype if dtype is not None else "auto"}

    def run(model):
        model.to(device).eval()
        with torch.no_grad():
            output = model(pixel_values.to(device), grids.to(device))
        return output.image_codes.cpu(), output.last_hidden_state.float().cpu()

    reference = run(LLaDAUniImageVQModel.from_pretrained(plan.src_dir, **load))
    release_memory()
    model = AutoModel.from_pretrained(out, **load)
    if not isinstance(model, LLaDAUniImageVQModel):
        problems.append(f"image tokenizer: AutoModel gave {type(model).__name__}, expected "
                        f"{LLaDAUniImageVQModel.__name__}.")
    converted = run(model)
    compare("image tokenizer codes", reference[0], converted[0], problems)
    compare("image tokenizer features", reference[1], converted[1], problems, float_tolerance(dtype))
    return problems
