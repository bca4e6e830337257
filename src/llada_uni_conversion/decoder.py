# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The image decoders: released `decoder*/` + `vae/` + `image_tokenizer/sigvq_embedding.pt` -> a diffusers pipeline
folder per decoder. The config fix and key rename are the released layout's (`released_layout_llada_uni`); the
pipeline classes and the folder's files besides the weights come from `diffusers_llada_uni`; only the weights are
streamed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers_llada_uni.released_layout_llada_uni import (
    DIFFUSERS_WEIGHTS_NAME,
    VAE_DIR,
    CheckpointError,
    corrected_transformer_config,
    find_decoder_weights,
    read_json,
    read_sigvq_state_dict,
    released_decoder_dir,
    released_sigvq_path,
    rename_transformer_key,
)

from .safetensors_stream import TensorInfo, read_header, read_tensor, write_streaming
from .verification import compare, float_tolerance, release_memory, same_bits
from .weights import WeightPlan, check_shapes, meta_shapes, require, target_dtype, write_weights

if TYPE_CHECKING:
    from tqdm.auto import tqdm


@dataclass
class DecoderPlan:
    src: Path
    folder: str
    turbo: bool
    transformer_config: dict
    transformer: WeightPlan
    vae_config: dict
    vae: WeightPlan
    sigvq_path: Path
    sigvq_config: dict

    @property
    def nbytes(self) -> int:
        return self.transformer.nbytes + self.vae.nbytes + self.sigvq_path.stat().st_size


def _expected_shapes(model_class, config: dict, config_path: Path) -> dict[str, tuple[int, ...]]:
    try:
        with torch.device("meta"):
            return meta_shapes(model_class.from_config(config))
    except (AssertionError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: not a valid {model_class.__name__} config ({err!r}).") from None


def inspect_decoder(src: Path, turbo: bool) -> DecoderPlan:
    from diffusers import AutoencoderKL, ZImageTransformer2DModel

    from diffusers_llada_uni import SigVQEmbedding

    decoder_dir = released_decoder_dir(src, turbo)
    released = read_json(require(decoder_dir / "config.json", f"the {decoder_dir.name} DiT config"))
    weights_paths = find_decoder_weights(decoder_dir)
    sigvq_state = read_sigvq_state_dict(src, mmap=True)
    sigvq_path = released_sigvq_path(src)
    sigvq_shapes = {k: tuple(v.shape) for k, v in sigvq_state.items()}
    del sigvq_state
    embedding = sigvq_shapes.get("prior_token_embedding.weight")
    if embedding is None or len(embedding) != 2:
        raise CheckpointError(f"{sigvq_path}: no 2-D `prior_token_embedding.weight`; keys: {sorted(sigvq_shapes)}.")
    sigvq_config = {"num_embeddings": embedding[0], "embedding_dim": embedding[1]}
    sigvq_found = {k: TensorInfo(k, torch.float32, v, str(sigvq_path)) for k, v in sigvq_shapes.items()}
    check_shapes(sigvq_found, _expected_shapes(SigVQEmbedding, sigvq_config, sigvq_path), str(sigvq_path))

    transformer_config = corrected_transformer_config(released, embedding[1])
    found = {}
    for path in weights_paths:
        for name, info in read_header(path).items():
            found[rename_transformer_key(name)] = info
    expected = _expected_shapes(ZImageTransformer2DModel, transformer_config, decoder_dir / "config.json")
    check_shapes(found, expected, ", ".join(map(str, weights_paths)))
    transformer = WeightPlan({DIFFUSERS_WEIGHTS_NAME: sorted(found.items())})

    vae_dir = Path(src) / VAE_DIR
    vae_config = read_json(require(vae_dir / "config.json", "the VAE config"))
    vae_path = require(vae_dir / DIFFUSERS_WEIGHTS_NAME, "the VAE weights (only safetensors are read)")
    vae_found = read_header(vae_path)
    check_shapes(vae_found, _expected_shapes(AutoencoderKL, vae_config, vae_dir / "config.json"), str(vae_path))
    vae = WeightPlan({DIFFUSERS_WEIGHTS_NAME: sorted(vae_found.items())})
    return DecoderPlan(src, decoder_dir.name, turbo, transformer_config, transformer, vae_config, vae, sigvq_path,
                       sigvq_config)


def write_decoder(plan: DecoderPlan, out: Path, dtype: torch.dtype | None, progress: tqdm | None,
                  include_remote_code: bool = True) -> None:
    """A `LLaDAUniDecoderPipeline` folder: configs, code and card from the pipeline's own saving, weights streamed."""
    from diffusers import AutoencoderKL, ZImageTransformer2DModel

    from diffusers_llada_uni import LLaDAUniDecoderPipeline, SigVQEmbedding
    from diffusers_llada_uni.pipeline_llada_uni_decoder import make_released_scheduler
    from diffusers_llada_uni.saving_llada_uni import write_pipeline_files

    # Components on the meta device give every config file (and model_index.json) exactly as save_pretrained
    # writes them, without materialising any weight.
    with torch.device("meta"):
        components = {
            "vq_embedder": SigVQEmbedding.from_config(plan.sigvq_config),
            "transformer": ZImageTransformer2DModel.from_config(plan.transformer_config),
            "vae": AutoencoderKL.from_config(plan.vae_config),
        }
    scheduler = make_released_scheduler(plan.turbo)
    pipe = LLaDAUniDecoderPipeline(**components, scheduler=scheduler, turbo=plan.turbo)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_config(out)
    scheduler.save_pretrained(out / "scheduler")
    for name, module in components.items():
        module.save_config(out / name)
    # The card carries the source's license and citation.
    write_pipeline_files(pipe, out, include_code=include_remote_code, source=plan.src)
    write_weights(plan.transformer, out / "transformer", dtype, progress=progress)
    write_weights(plan.vae, out / "vae", dtype, progress=progress)

    state = read_sigvq_state_dict(plan.src, mmap=True)
    entries = []
    for name in sorted(state):
        tensor = state[name]
        target = target_dtype(name, tensor.dtype, dtype)
        entries.append((name, target, tuple(tensor.shape), lambda t=tensor, d=target: t.to(d)))
    write_streaming(out / "vq_embedder" / DIFFUSERS_WEIGHTS_NAME, entries, metadata={"format": "pt"})
    del state


def verify_decoder(plan: DecoderPlan, out: Path, dtype: torch.dtype | None, device: str | torch.device,
                   generator: torch.Generator) -> list[str]:
    """Each component of the converted pipeline against `LLaDAUniDecoderPipeline.from_released` on random inputs."""
    from diffusers_llada_uni import LLaDAUniDecoderPipeline

    problems = []
    # The SigVQ weights come from a torch.save file: compared bit for bit here (the safetensors parts are compared
    # by `verify_written`).
    written = read_header(out / "vq_embedder" / DIFFUSERS_WEIGHTS_NAME)
    state = read_sigvq_state_dict(plan.src, mmap=True)
    if set(written) != set(state):
        problems.append(f"{plan.folder}: SigVQ keys {sorted(written)} after conversion, {sorted(state)} before.")
    for name in sorted(set(written) & set(state)):
        expected = state[name].to(target_dtype(name, state[name].dtype, dtype))
        if not same_bits(expected, read_tensor(written[name])):
            problems.append(f"{plan.folder}: SigVQ weight {name} differs from {plan.sigvq_path}.")
    del state
    grid = (2, 3)
    codes = torch.randint(0, plan.sigvq_config["num_embeddings"], (1, *grid), generator=generator)
    channels = plan.transformer_config.get("in_channels", 16)
    factor = 2  # SigVQ upsampling: the DiT sees a 2x finer grid than the codes
    patch = plan.transformer_config.get("all_patch_size", [2])[0]
    latent = torch.randn(channels, 1, grid[0] * factor * patch, grid[1] * factor * patch, generator=generator)
    t = torch.rand(1, generator=generator)
    vae_latent = torch.randn(1, plan.vae_config.get("latent_channels", 16), 4, 4, generator=generator)

    def run(pipe):
        pipe.to(device)
        model_dtype = pipe.transformer.dtype
        with torch.no_grad():
            features = pipe.vq_embedder(codes.to(device))
            velocity = pipe.transformer(
                [latent.to(device, model_dtype)], t.to(device), [features[0].to(model_dtype)], return_dict=False
            )[0][0]
            image = pipe.vae.decode(vae_latent.to(device, pipe.vae.dtype), return_dict=False)[0]
        schedule = dict(pipe.scheduler.config)
        return features.float().cpu(), velocity.float().cpu(), image.float().cpu(), schedule, type(pipe)

    reference = run(LLaDAUniDecoderPipeline.from_released(plan.src, turbo=plan.turbo, torch_dtype=dtype))
    release_memory()
    converted = run(LLaDAUniDecoderPipeline.from_pretrained(out, torch_dtype=dtype))
    where = f"{plan.folder}"
    rtol = float_tolerance(dtype)
    compare(f"{where}: SigVQ features", reference[0], converted[0], problems, rtol)
    compare(f"{where}: DiT velocity", reference[1], converted[1], problems, rtol)
    compare(f"{where}: VAE image", reference[2], converted[2], problems, rtol)
    # Bookkeeping entries (`_diffusers_version`, `_class_name`, ...) exist only in a loaded file's config.
    before = {k: v for k, v in reference[3].items() if not k.startswith("_")}
    after = {k: v for k, v in converted[3].items() if not k.startswith("_")}
    if before != after:
        diff = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
        problems.append(f"{where}: scheduler config differs (before, after): {diff}.")
    return problems
