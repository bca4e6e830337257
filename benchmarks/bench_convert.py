#!/usr/bin/env python
# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Peak memory of a conversion against the largest source shard.

Builds a synthetic checkpoint in the released layout in a temporary folder (random weights; the real backbone key
names of `tests/fixtures/real-checkpoint-files/model.safetensors.index.json`, the real layer and expert counts, widths
scaled down; several shards; the tiny test tokenizer), converts it in a child process and reports the child's peak
resident memory. The temporary folder is deleted at the end.

    python benchmarks/bench_convert.py                 # about 2.3 GB of weights, conversion without verification
    python benchmarks/bench_convert.py --verify        # also the peak with verification (loads one model at a time)

Linux only (it reads /proc/self/status).

Goal: the conversion's peak, above the memory of the same process right before converting (interpreter, torch,
transformers, diffusers imported), stays within the largest shard + 20%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from safetensors.torch import save_file


REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
REAL = FIXTURES / "real-checkpoint-files"
TINY = FIXTURES / "tiny-llada2-uni"


def _random(shape, dtype, generator):
    return (torch.randn(shape, generator=generator) * 0.02).to(dtype)


def _write_shards(folder: Path, shapes: dict, order: list[str], num_shards: int, dtype, generator, prefix="model"):
    """Split `order` into `num_shards` files of about equal bytes; generate and save one shard at a time."""
    sizes = {k: torch.Size(shapes[k]).numel() * torch.empty((), dtype=dtype).element_size() for k in order}
    target = sum(sizes.values()) / num_shards
    groups, current, acc = [], [], 0
    for key in order:
        if current and acc + sizes[key] > target * 1.02 and len(groups) < num_shards - 1:
            groups.append(current)
            current, acc = [], 0
        current.append(key)
        acc += sizes[key]
    groups.append(current)
    weight_map = {}
    for i, keys in enumerate(groups):
        name = f"{prefix}-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for key in keys:
            t = _random(shapes[key], dtype, generator)
            if key.endswith("expert_bias"):
                t = t.float()
            if key.endswith("layernorm.weight") or key.endswith("norm.weight"):
                t = torch.ones(shapes[key], dtype=t.dtype)
            tensors[key] = t
            weight_map[key] = name
        save_file(tensors, folder / name, metadata={"format": "pt"})
        del tensors
    total = sum(sizes.values())
    with open(folder / f"{prefix}.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return [folder / f"{prefix}-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]


def make_synthetic_release(root: Path, hidden: int, num_shards: int, dtype=torch.float32, seed=0) -> None:
    """A released-layout folder: real key names and depths, widths scaled to `hidden`."""
    import transformers_llada_uni  # noqa: F401
    from diffusers import AutoencoderKL, ZImageTransformer2DModel
    from transformers.models.glm_image.configuration_glm_image import GlmImageConfig
    from transformers.models.glm_image.modeling_glm_image import GlmImageVisionModel, GlmImageVQVAE

    from llada_uni_conversion.backbone import expected_backbone_shapes
    from transformers_llada_uni import LLaDAUniConfig

    generator = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(TINY / name, root / name)
    tiny_config = json.loads((TINY / "config.json").read_text())
    codebook = tiny_config["vocab_size"] - tiny_config["image_token_offset"]

    # Backbone: the real config with the tokenizer's vocabulary and the widths scaled.
    config = json.loads((REAL / "config.json").read_text())
    scale = hidden / config["hidden_size"]
    config.update(
        vocab_size=tiny_config["vocab_size"],
        image_token_offset=tiny_config["image_token_offset"],
        pad_token_id=tiny_config["pad_token_id"],
        hidden_size=hidden,
        intermediate_size=int(config["intermediate_size"] * scale),
        moe_intermediate_size=int(config["moe_intermediate_size"] * scale),
        head_dim=max(8, int(config["head_dim"] * scale) // 4 * 4),
        torch_dtype=str(dtype).removeprefix("torch."),
    )
    (root / "config.json").write_text(json.dumps(config, indent=2))
    fields = {k: v for k, v in config.items() if k not in ("auto_map", "architectures", "model_type",
                                                          "transformers_version", "torch_dtype")}
    shapes = expected_backbone_shapes(LLaDAUniConfig(**fields, mask_token_id=735, eos_token_id=tiny_config["pad_token_id"],
                                                   image_codebook_size=codebook))
    real_keys = json.loads((REAL / "model.safetensors.index.json").read_text())["weight_map"]
    if set(real_keys) != set(shapes):
        raise RuntimeError("the synthetic backbone's keys differ from the released index")
    _write_shards(root, shapes, list(real_keys), num_shards, dtype, generator)

    # Image tokenizer: the released GLM-Image config, widths scaled, real depth.
    it_dir = root / "image_tokenizer"
    it_dir.mkdir()
    it_config = json.loads((REAL / "image_tokenizer" / "config.json").read_text())
    vision, vq = it_config["vision_config"], it_config["vq_config"]
    width = max(64, int(vision["hidden_size"] * scale) // vision["num_heads"] * vision["num_heads"])
    vision.update(hidden_size=width, intermediate_size=4 * width, image_size=256)
    vq.update(latent_channels=width, embed_dim=max(32, int(vq["embed_dim"] * scale)), num_embeddings=codebook)
    (it_dir / "config.json").write_text(json.dumps(it_config, indent=2))
    shutil.copyfile(REAL / "image_tokenizer" / "preprocessor_config.json", it_dir / "preprocessor_config.json")
    glm = GlmImageConfig(**it_config)
    with torch.device("meta"):
        visual, vqmodel = GlmImageVisionModel(glm.vision_config), GlmImageVQVAE(glm.vq_config)
    tensors = {f"model.visual.{k}": _random(v.shape, dtype, generator) for k, v in visual.state_dict().items()}
    tensors |= {f"model.vqmodel.{k}": _random(v.shape, dtype, generator) for k, v in vqmodel.state_dict().items()}
    tensors["model.language_model.embed_tokens.weight"] = _random((4, 4), dtype, generator)  # ignored by loaders
    save_file(tensors, it_dir / "image_tokenizer.safetensors", metadata={"format": "pt"})
    del tensors

    # SigVQ (a torch.save file, as released) and the two DiTs, widths scaled.
    sig_width = max(64, int(4096 * scale))
    sigvq = {
        "prior_token_embedding.weight": _random((codebook, sig_width), dtype, generator),
        "prior_projector.net.0.proj.weight": _random((sig_width, sig_width), dtype, generator),
        "prior_projector.net.0.proj.bias": _random((sig_width,), dtype, generator),
        "prior_projector.net.2.weight": _random((sig_width, sig_width), dtype, generator),
        "prior_projector.net.2.bias": _random((sig_width,), dtype, generator),
    }
    torch.save(sigvq, it_dir / "sigvq_embedding.pt")
    dit_config = json.loads((REAL / "decoder" / "config.json").read_text())
    heads = dit_config["n_heads"] // 5
    head = max(16, int(dit_config["dim"] // dit_config["n_heads"] * scale * 4) // 16 * 16)
    dit_dim = head * heads
    dit_config.update(dim=dit_dim, n_heads=heads, n_kv_heads=heads, axes_dims=[head // 4, 3 * head // 8, 3 * head // 8])
    fixed = dict(dit_config, cap_feat_dim=sig_width, axes_lens=[32768, 1024, 1024])
    with torch.device("meta"):
        dit = ZImageTransformer2DModel.from_config(fixed)
    for folder, file_name in (("decoder", "decoder_model.safetensors"), ("decoder-turbo", "model.safetensors")):
        (root / folder).mkdir()
        (root / folder / "config.json").write_text(json.dumps(dit_config, indent=2))  # the released, wrong values
        tensors = {
            k.replace("cap_embedder.", "semantic_embedder.", 1): _random(v.shape, dtype, generator)
            for k, v in dit.state_dict().items()
        }
        save_file(tensors, root / folder / file_name, metadata={"format": "pt"})
        del tensors

    vae_config = json.loads((REAL / "vae" / "config.json").read_text())
    vae_config["block_out_channels"] = [32, 64, 64, 64]
    vae_config["norm_num_groups"] = 32
    (root / "vae").mkdir()
    (root / "vae" / "config.json").write_text(json.dumps(vae_config, indent=2))
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(vae_config)
    save_file({k: _random(v.shape, dtype, generator) for k, v in vae.state_dict().items()},
              root / "vae" / "diffusion_pytorch_model.safetensors", metadata={"format": "pt"})


# The child measures itself with the kernel's high-water mark of its own address space (VmHWM, reset to the current
# RSS through /proc/self/clear_refs after the imports). `getrusage(...).ru_maxrss` would not do: across fork it keeps
# the parent's peak, here the memory that generated the synthetic checkpoint.
_CHILD = textwrap.dedent(
    """
    import json, sys
    import torch, transformers, diffusers, transformers_llada_uni, diffusers_llada_uni
    from llada_uni_conversion import convert

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = status("VmRSS")
    convert(sys.argv[1], sys.argv[2], verify=sys.argv[3] == "1", progress=False, log=lambda m: None)
    print(json.dumps({"baseline_kib": before, "peak_kib": status("VmHWM")}))
    """
)


def measure(src: Path, dst: Path, verify: bool) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(dst), "1" if verify else "0"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"conversion failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=384, help="backbone width (real: 2048); 384 gives ~2.3 GB")
    parser.add_argument("--shards", type=int, default=5, help="number of backbone shards")
    parser.add_argument("--verify", action="store_true", help="also measure a conversion with verification")
    parser.add_argument("--workdir", default=None, help="where to build the temporary folder (default: $TMPDIR)")
    parser.add_argument("--src", type=Path, default=None,
                        help="measure on this existing synthetic checkpoint (kept) instead of building one")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="llada-uni-bench-", dir=args.workdir))
    try:
        src = args.src
        if src is None:
            src = work / "released"
            print(f"Building the synthetic released checkpoint in {src} ...", flush=True)
            make_synthetic_release(src, args.hidden, args.shards)
        files = [p for p in src.rglob("*") if p.is_file()]
        weights = [p for p in files if p.suffix in (".safetensors", ".pt")]
        total = sum(p.stat().st_size for p in weights)
        largest = max(weights, key=lambda p: p.stat().st_size)
        mib = 1024**2
        print(f"weights: {total / mib:.0f} MiB in {len(weights)} files; largest {largest.relative_to(src)} "
              f"{largest.stat().st_size / mib:.0f} MiB", flush=True)
        runs = [False, True] if args.verify else [False]
        for verify in runs:
            dst = work / f"converted-{int(verify)}"
            stats = measure(src, dst, verify)
            peak, base = stats["peak_kib"] * 1024, stats["baseline_kib"] * 1024
            growth = peak - base
            shard = largest.stat().st_size
            print(
                f"{'with' if verify else 'without'} verification: peak RSS {peak / mib:.0f} MiB, before converting "
                f"{base / mib:.0f} MiB, growth {growth / mib:.0f} MiB = {growth / shard:.2f} x largest shard "
                f"({'within' if growth <= 1.2 * shard else 'ABOVE'} the 1.2 x goal)",
                flush=True,
            )
            shutil.rmtree(dst, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
