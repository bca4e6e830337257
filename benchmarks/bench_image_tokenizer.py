"""Images per second of the SigLIP-VQ image tokenizer: one batched call on 8 pictures of different sizes against 8
single calls, and the peak memory of each, measured in one run on the same model and inputs.

A batched call packs every picture's patches into one sequence: the linear layers (QKV, MLP, 1x1 conv) run once on
all patches and attention stays within each picture, so per-call overhead is paid once instead of eight times.

    python benchmarks/bench_image_tokenizer.py                 # mid-size random encoder (CPU friendly)
    python benchmarks/bench_image_tokenizer.py --size real     # the released 40 x 1536 encoder (needs a GPU)
    python benchmarks/bench_image_tokenizer.py --device cuda --dtype bfloat16

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` above what is allocated before the call; on CPU, the
process's peak resident set (VmHWM, reset through /proc/self/clear_refs) above the resident set before the call.
"""

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from transformers_llada_uni import LLaDAUniImageProcessor, LLaDAUniImageVQConfig, LLaDAUniImageVQModel


SIZES = {
    "tiny": dict(depth=2, hidden_size=64, num_heads=2, intermediate_size=128, embed_dim=32, num_embeddings=1024),
    "mid": dict(depth=6, hidden_size=384, num_heads=6, intermediate_size=1536, embed_dim=512, num_embeddings=16384),
    "real": None,  # read from the released config file
}
REAL_CONFIG = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real-checkpoint-files" / "image_tokenizer"
)

# 8 pictures of different sizes and aspects (width, height): understanding sizes from 128 x 128 to about 640 x 480.
PICTURE_SIZES = [(150, 100), (90, 200), (64, 64), (640, 480), (300, 300), (500, 260), (220, 400), (1024, 768)]


def build_model(size: str, device: str, dtype: torch.dtype) -> LLaDAUniImageVQModel:
    if size == "real":
        config = LLaDAUniImageVQConfig.from_pretrained(REAL_CONFIG)
    else:
        s = SIZES[size]
        config = LLaDAUniImageVQConfig(
            vision_config=dict(
                depth=s["depth"], hidden_size=s["hidden_size"], num_heads=s["num_heads"],
                intermediate_size=s["intermediate_size"], image_size=2048, patch_size=16,
            ),
            vq_config=dict(
                latent_channels=s["hidden_size"], embed_dim=s["embed_dim"], num_embeddings=s["num_embeddings"]
            ),
        )
    torch.manual_seed(0)
    return LLaDAUniImageVQModel(config).to(device=device, dtype=dtype).eval()


def pictures():
    rng = np.random.default_rng(0)
    return [PIL.Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in PICTURE_SIZES]


def _rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def measure_peak(fn, device: str) -> float:
    """Extra memory (MiB) at the peak of `fn()` over what was in use before it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan")
    before = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - before) / 1024


def timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="mid")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)

    model = build_model(args.size, args.device, dtype)
    processor = LLaDAUniImageProcessor()
    images = pictures()
    batch = processor(images, mode="understand", return_tensors="pt")
    singles = [processor(image, mode="understand", return_tensors="pt") for image in images]
    batch = {k: v.to(args.device) for k, v in batch.items()}
    singles = [{k: v.to(args.device) for k, v in s.items()} for s in singles]
    patches = int(batch["image_grid_thw"].prod(-1).sum())

    def run_batched():
        return model.encode(batch["pixel_values"], batch["image_grid_thw"]).image_codes

    def run_singles():
        return [model.encode(s["pixel_values"], s["image_grid_thw"]).image_codes for s in singles]

    def run_batched_end_to_end():
        inputs = processor(images, mode="understand", return_tensors="pt")
        return model.encode(inputs["pixel_values"].to(args.device), inputs["image_grid_thw"].to(args.device))

    def run_singles_end_to_end():
        for image in images:
            inputs = processor(image, mode="understand", return_tensors="pt")
            model.encode(inputs["pixel_values"].to(args.device), inputs["image_grid_thw"].to(args.device))

    with torch.no_grad():
        batched_codes = run_batched()
        single_codes = torch.cat(run_singles())
        agreement = (batched_codes == single_codes).float().mean().item()
        if dtype == torch.float32:
            # Same codes either way; only float rounding of the packed matmuls differs, so allow rare near-ties.
            assert agreement > 0.999, f"batched and single codes differ: agreement {agreement:.4f}"

        t_batched = timed(run_batched, args.device, args.repeats)
        t_single = timed(run_singles, args.device, args.repeats)
        t_batched_e2e = timed(run_batched_end_to_end, args.device, args.repeats)
        t_single_e2e = timed(run_singles_end_to_end, args.device, args.repeats)
        peak_batched = measure_peak(run_batched, args.device)
        peak_single = measure_peak(run_singles, args.device)

    n = len(images)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    threads = torch.get_num_threads()
    print(f"image tokenizer '{args.size}' ({params:.1f} M parameters), {args.device}, {args.dtype}, "
          f"{threads} threads; {n} pictures, {patches} patches in all; median of {args.repeats}")
    print(f"  codes of the batched call == codes of the single calls: {agreement * 100:.2f} %")
    print(f"  model only   : batched {n / t_batched:8.2f} images/s   8 single calls {n / t_single:8.2f} images/s   "
          f"batched / single = {t_single / t_batched:.2f}x")
    print(f"  with preproc : batched {n / t_batched_e2e:8.2f} images/s   8 single calls {n / t_single_e2e:8.2f} "
          f"images/s   batched / single = {t_single_e2e / t_batched_e2e:.2f}x")
    print(f"  peak memory above the model: batched {peak_batched:.1f} MiB, 8 single calls {peak_single:.1f} MiB "
          f"(ratio {peak_batched / peak_single if peak_single else float('nan'):.2f})")
    if args.json:
        print(json.dumps(dict(
            size=args.size, device=args.device, dtype=args.dtype, images=n, patches=patches,
            batched_images_per_s=n / t_batched, single_images_per_s=n / t_single, speedup=t_single / t_batched,
            batched_e2e_images_per_s=n / t_batched_e2e, single_e2e_images_per_s=n / t_single_e2e,
            peak_batched_mib=peak_batched, peak_single_mib=peak_single, agreement=agreement,
        )))


if __name__ == "__main__":
    main()
