# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Released `decoder*/` + `vae/` + `image_tokenizer/sigvq_embedding.pt` -> a diffusers pipeline folder.

The DiT is diffusers' `ZImageTransformer2DModel`; the released config holds a wrong `cap_feat_dim` and `axes_lens`
(the original code overrides both at load time) and the weights call the caption embedder `semantic_embedder.*`
where diffusers says `cap_embedder.*`. The pipeline classes and their component names come from
`diffusers_llada_uni`; only the weights are streamed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .convert import (
    IMAGE_TOKENIZER_DIR,
    SIGVQ_FILE,
    VAE_DIR,
    CheckpointError,
    WeightPlan,
    _compare,
    float_tolerance,
    release_memory,
    same_bits,
    target_dtype,
    _read_json,
    _require,
    check_shapes,
    write_weights,
)
from .safetensors_stream import TensorInfo, read_header, read_tensor, write_streaming


DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


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


def _meta_shapes(model_class, config: dict) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = model_class.from_config(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _decoder_weight_file(folder: Path) -> Path:
    from diffusers_llada_uni.pipeline_llada_uni_decoder import RELEASED_DECODER_WEIGHT_NAMES

    for name in RELEASED_DECODER_WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(
        f"{folder} holds no decoder weights: expected one of {', '.join(RELEASED_DECODER_WEIGHT_NAMES)}."
    )


def read_sigvq(src: Path) -> tuple[Path, dict]:
    """Shapes of the released SigVQ state dict (a `torch.save` file, read with `weights_only=True`, memory-mapped)."""
    path = _require(src / IMAGE_TOKENIZER_DIR / SIGVQ_FILE, "the decoder's SigVQ token embedding")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises many types for a damaged zip
        raise CheckpointError(f"{path}: cannot be read with torch.load(weights_only=True) ({err}).") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors.")
    return path, {k: tuple(v.shape) for k, v in state.items()}


def corrected_transformer_config(released: dict, sigvq_width: int) -> dict:
    """The released DiT config with the values its weights need (what the original code set at load time)."""
    from diffusers_llada_uni.pipeline_llada_uni_decoder import RELEASED_AXES_LENS

    config = {k: v for k, v in released.items() if not k.startswith("_")}
    config["cap_feat_dim"] = int(sigvq_width)
    config["axes_lens"] = list(RELEASED_AXES_LENS)
    return config


def _rename_transformer_key(name: str) -> str:
    # diffusers' ZImageTransformer2DModel calls the caption embedder `cap_embedder`.
    if name.startswith("semantic_embedder."):
        return "cap_embedder." + name[len("semantic_embedder."):]
    return name


def inspect_decoder(src: Path, folder: str, turbo: bool) -> DecoderPlan:
    from diffusers import AutoencoderKL, ZImageTransformer2DModel

    from diffusers_llada_uni import SigVQEmbedding

    decoder_dir = src / folder
    released = _read_json(_require(decoder_dir / "config.json", f"the {folder} DiT config"))
    weights_path = _decoder_weight_file(decoder_dir)
    sigvq_path, sigvq_shapes = read_sigvq(src)
    embedding = sigvq_shapes.get("prior_token_embedding.weight")
    if embedding is None or len(embedding) != 2:
        raise CheckpointError(f"{sigvq_path}: no 2-D `prior_token_embedding.weight`; keys: {sorted(sigvq_shapes)}.")
    sigvq_config = {"num_embeddings": embedding[0], "embedding_dim": embedding[1]}
    sigvq_found = {k: TensorInfo(k, torch.float32, v, str(sigvq_path)) for k, v in sigvq_shapes.items()}
    check_shapes(sigvq_found, _meta_shapes(SigVQEmbedding, sigvq_config), str(sigvq_path))

    transformer_config = corrected_transformer_config(released, embedding[1])
    found = {}
    for name, info in read_header(weights_path).items():
        found[_rename_transformer_key(name)] = info
    try:
        expected = _meta_shapes(ZImageTransformer2DModel, transformer_config)
    except (AssertionError, TypeError, ValueError) as err:
        raise CheckpointError(f"{decoder_dir / 'config.json'}: not a valid Z-Image DiT config ({err!r}).") from None
    check_shapes(found, expected, str(weights_path))
    transformer = WeightPlan({DIFFUSERS_WEIGHTS: sorted(found.items())})

    vae_dir = src / VAE_DIR
    vae_config = _read_json(_require(vae_dir / "config.json", "the VAE config"))
    vae_path = _require(vae_dir / DIFFUSERS_WEIGHTS, "the VAE weights")
    vae_found = read_header(vae_path)
    check_shapes(vae_found, _meta_shapes(AutoencoderKL, vae_config), str(vae_path))
    vae = WeightPlan({DIFFUSERS_WEIGHTS: sorted(vae_found.items())})
    return DecoderPlan(src, folder, turbo, transformer_config, transformer, vae_config, vae, sigvq_path, sigvq_config)


def write_decoder(plan: DecoderPlan, out: Path, dtype, progress) -> None:
    """A `LLaDAUniDecoderPipeline` folder: configs from the pipeline's own classes, weights streamed."""
    from diffusers import AutoencoderKL, ZImageTransformer2DModel

    from diffusers_llada_uni import LLaDAUniDecoderPipeline, SigVQEmbedding, make_released_scheduler

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
    write_weights(plan.transformer, out / "transformer", dtype, progress=progress)
    write_weights(plan.vae, out / "vae", dtype, progress=progress)

    state = torch.load(plan.sigvq_path, map_location="cpu", weights_only=True, mmap=True)
    entries = []
    for name in sorted(state):
        tensor = state[name]
        target = target_dtype(name, tensor.dtype, dtype)
        entries.append((name, target, tuple(tensor.shape), lambda t=tensor, d=target: t.to(d)))
    write_streaming(out / "vq_embedder" / DIFFUSERS_WEIGHTS, entries, metadata={"format": "pt"})
    del state


def verify_decoder(plan: DecoderPlan, out: Path, dtype, device, generator) -> list[str]:
    """Each component of the converted pipeline against `LLaDAUniDecoderPipeline.from_released` on random inputs."""
    from diffusers_llada_uni import LLaDAUniDecoderPipeline

    problems = []
    # The SigVQ weights come from a torch.save file: compared bit for bit here (the safetensors parts are compared
    # by `verify_written`).
    written = read_header(out / "vq_embedder" / DIFFUSERS_WEIGHTS)
    state = torch.load(plan.sigvq_path, map_location="cpu", weights_only=True, mmap=True)
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
    _compare(f"{where}: SigVQ features", reference[0], converted[0], problems, rtol)
    _compare(f"{where}: DiT velocity", reference[1], converted[1], problems, rtol)
    _compare(f"{where}: VAE image", reference[2], converted[2], problems, rtol)
    # Bookkeeping entries (`_diffusers_version`, `_class_name`, ...) exist only in a loaded file's config.
    before = {k: v for k, v in reference[3].items() if not k.startswith("_")}
    after = {k: v for k, v in converted[3].items() if not k.startswith("_")}
    if before != after:
        diff = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
        problems.append(f"{where}: scheduler config differs (before, after): {diff}.")
    return problems
