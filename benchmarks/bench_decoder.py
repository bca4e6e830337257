# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Decoder speed: a resident `LLaDAUniDecoderPipeline` against loading the components for every call.

The original `decode_vq_tokens` builds the SigVQ embedding, the Z-Image DiT and the VAE from disk on every call
(random initialisation, then `load_state_dict`) before it samples. This script times, in one run and on one device:

1. per-call loading in the original's way + one decode, against decodes with a pipeline loaded once;
2. the distilled turbo decoder against the 50-step one (DiT evaluations and wall time), both resident.

The resident pipeline saves exactly the loading, so its speed-up cannot exceed `(load + decode) / decode`; the
script prints that ceiling next to each measurement. It is large where loading is expensive against sampling
(multi-GB weights, a fast accelerator) and small where sampling dominates (a CPU).

Two setups: the tiny released checkpoint (tests/fixtures/tiny-llada2-uni) and a mid-size random DiT written in the
released layout to a temporary folder (`--mid-*` options set its size). Only ratios measured in the same run are
meaningful; the machine's other load moves absolute figures.

    python benchmarks/bench_decoder.py                       # both setups, CPU or the first GPU
    python benchmarks/bench_decoder.py --setups tiny --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ZImageTransformer2DModel
from safetensors.torch import load_file, save_file

from diffusers_llada_uni import LLaDAUniDecoderPipeline, SigVQEmbedding, make_released_scheduler
from transformers_llada_uni.released_layout_llada_uni import RELEASED_AXES_LENS
from transformers_llada_uni.released_layout_llada_uni import find_decoder_weights as _find_decoder_weights


REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures" / "tiny-llada2-uni"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_like_original(released_dir: Path, turbo: bool, device: torch.device) -> LLaDAUniDecoderPipeline:
    """Everything from disk, the original's way: modules built with random weights, then the stored ones loaded."""
    sigvq_state = torch.load(released_dir / "image_tokenizer" / "sigvq_embedding.pt", map_location="cpu", weights_only=True)
    num_embeddings, width = sigvq_state["prior_token_embedding.weight"].shape
    vq = SigVQEmbedding(num_embeddings=num_embeddings, embedding_dim=width)
    vq.load_state_dict(sigvq_state)

    decoder_dir = released_dir / ("decoder-turbo" if turbo else "decoder")
    with open(decoder_dir / "config.json", encoding="utf-8") as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    config.update(cap_feat_dim=width, axes_lens=list(RELEASED_AXES_LENS))
    dit = ZImageTransformer2DModel(**config)
    state = {}
    for path in _find_decoder_weights(decoder_dir):
        state.update({k.replace("semantic_embedder.", "cap_embedder."): v for k, v in load_file(str(path)).items()})
    dit.load_state_dict(state)

    vae = AutoencoderKL.from_pretrained(released_dir / "vae")
    pipe = LLaDAUniDecoderPipeline(vq.eval(), dit.eval(), vae.eval(), make_released_scheduler(turbo), turbo=turbo)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def write_random_released(folder: Path, dim: int, layers: int, heads: int, width: int, codebook: int, vae_channels):
    """A released-layout folder (both decoders, SigVQ, VAE) with random weights of the given size."""
    torch.manual_seed(0)
    (folder / "image_tokenizer").mkdir(parents=True)
    vq = SigVQEmbedding(num_embeddings=codebook, embedding_dim=width)
    # The release ships this file as a plain torch.save state dict; the benchmark mirrors that layout.
    torch.save(vq.state_dict(), folder / "image_tokenizer" / "sigvq_embedding.pt")
    head_dim = dim // heads
    axes = [head_dim // 4, 3 * head_dim // 8, 3 * head_dim // 8]
    config = {
        "all_f_patch_size": [1], "all_patch_size": [2], "axes_dims": axes, "axes_lens": [1536, 512, 512],
        "cap_feat_dim": 2560, "dim": dim, "in_channels": 16, "n_heads": heads, "n_kv_heads": heads,
        "n_layers": layers, "n_refiner_layers": 2, "norm_eps": 1e-5, "qk_norm": True, "rope_theta": 256.0,
        "siglip_feat_dim": None, "t_scale": 1000.0,
    }
    dit = ZImageTransformer2DModel(**{**config, "cap_feat_dim": width, "axes_lens": list(RELEASED_AXES_LENS)})
    state = {k.replace("cap_embedder.", "semantic_embedder."): v.contiguous() for k, v in dit.state_dict().items()}
    for name, weight_file in (("decoder", "decoder_model.safetensors"), ("decoder-turbo", "model.safetensors")):
        (folder / name).mkdir()
        with open(folder / name / "config.json", "w", encoding="utf-8") as f:
            json.dump({"_class_name": "ZImageTransformer2DModel", **config}, f)
        save_file(state, str(folder / name / weight_file))
    with open(REPO / "tests" / "fixtures" / "real-checkpoint-files" / "vae" / "config.json", encoding="utf-8") as f:
        vae_config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    vae_config["block_out_channels"] = list(vae_channels)
    AutoencoderKL(**vae_config).save_pretrained(folder / "vae")
    return sum(p.numel() for p in dit.parameters()), sum(p.numel() for p in vq.parameters())


class CountCalls:
    def __init__(self, module):
        self.calls = self.items = 0
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.calls += 1
        self.items += len(args[0])


def time_it(fn, device, repeats):
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def bench_setup(name, released_dir, device, repeats, grid, turbo_steps, normal_steps):
    h, w = grid
    codes = [(7 * i) % 64 for i in range(h * w)]
    print(f"\n== {name}: {released_dir} on {device} (grid {h}x{w} -> {h * 32}x{w * 32} px) ==")
    results = {}
    for turbo, steps in ((True, turbo_steps), (False, normal_steps)):
        label = "turbo" if turbo else "normal"
        pipe = LLaDAUniDecoderPipeline.from_released(released_dir, turbo=turbo).to(device)
        pipe.set_progress_bar_config(disable=True)

        def decode(p):
            return p(codes, grid_size=grid, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                     output_type="pt").images

        decode(pipe)  # warm-up (kernel selection, allocator)
        decode(load_like_original(released_dir, turbo, device))
        # Interleaved, so that a change in the machine's load hits both sides alike.
        resident_times, per_call_times, load_times = [], [], []
        for _ in range(repeats):
            resident_times.append(time_it(lambda: decode(pipe), device, 1)[0])
            per_call_times.append(time_it(lambda: decode(load_like_original(released_dir, turbo, device)), device, 1)[0])
            load_times.append(time_it(lambda: load_like_original(released_dir, turbo, device), device, 1)[0])
        resident, per_call, load_only = map(statistics.median, (resident_times, per_call_times, load_times))
        counter = CountCalls(pipe.transformer)
        decode(pipe)
        counter.handle.remove()
        results[label] = {"resident_s": resident, "calls": counter.calls, "items": counter.items}
        print(
            f"{label:6s} {steps:2d} steps | load-per-call (original) {per_call:8.3f} s | resident pipeline "
            f"{resident:8.3f} s | speed-up x{per_call / resident:6.1f} | (loading alone {load_only:.3f} s: "
            f"ceiling x{(load_only + resident) / resident:.1f})"
        )
        del pipe
    t, n = results["turbo"], results["normal"]
    print(
        f"turbo vs normal: DiT forwards {t['calls']} vs {n['calls']} (batch items {t['items']} vs {n['items']}), "
        f"wall {t['resident_s']:.3f} s vs {n['resident_s']:.3f} s -> turbo x{n['resident_s'] / t['resident_s']:.1f} faster"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default="tiny,mid", help="comma-separated: tiny, mid")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (on a shared machine 1 avoids OpenMP spin-waiting that swamps small kernels)",
    )
    parser.add_argument("--grid", type=int, nargs=2, default=(4, 4))
    parser.add_argument("--turbo-steps", type=int, default=8)
    parser.add_argument("--normal-steps", type=int, default=49, help="DiT calls (the original's num_steps=50)")
    parser.add_argument("--mid-dim", type=int, default=768)
    parser.add_argument("--mid-layers", type=int, default=8)
    parser.add_argument("--mid-heads", type=int, default=6)
    parser.add_argument("--mid-width", type=int, default=1024, help="SigVQ width (= DiT cap_feat_dim)")
    parser.add_argument("--mid-vae-channels", type=int, nargs=4, default=(64, 128, 256, 256))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    for setup in args.setups.split(","):
        if setup == "tiny":
            bench_setup("tiny checkpoint", TINY, device, args.repeats, tuple(args.grid), args.turbo_steps,
                        args.normal_steps)
        elif setup == "mid":
            with tempfile.TemporaryDirectory(prefix="llada-uni-bench-") as tmp:
                folder = Path(tmp) / "released"
                dit_params, vq_params = write_random_released(
                    folder, args.mid_dim, args.mid_layers, args.mid_heads, args.mid_width, 16384, args.mid_vae_channels
                )
                size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
                bench_setup(
                    f"mid-size random DiT ({dit_params / 1e6:.0f} M params, SigVQ {vq_params / 1e6:.0f} M, "
                    f"{size:.0f} MiB on disk per decoder set)",
                    folder, device, args.repeats, tuple(args.grid), args.turbo_steps, args.normal_steps,
                )
        else:
            raise SystemExit(f"unknown setup {setup!r}; choose from tiny, mid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
