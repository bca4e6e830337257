"""Forward time of each `experts_implementation` against the original per-expert loop, measured in one run.

The original LLaDA2.0 MoE sorts the token copies by expert and runs one SwiGLU (three matmuls) per expert that
received tokens. We register that loop as an experts implementation on the same fused weights, so every variant runs
the same model and the same inputs, and print each implementation's time as a ratio against it.

    python benchmarks/bench_moe.py                 # hidden 512, 64 experts, top 8, 1024 tokens
    python benchmarks/bench_moe.py --tokens 256    # quicker
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration


def original_loop_experts_forward(self, hidden_states, top_k_index, top_k_weights):
    """The original `moe_infer`: argsort token copies by expert, one gate/up/down matmul triple per expert."""
    intermediate = self.intermediate_dim
    counts = torch.bincount(top_k_index.flatten(), minlength=self.num_experts).tolist()
    order = top_k_index.flatten().argsort()
    sorted_tokens = hidden_states[order // top_k_index.shape[1]]
    outputs, start = [], 0
    for expert, count in enumerate(counts):
        if count == 0:
            continue
        tokens = sorted_tokens[start : start + count]
        gate = F.linear(tokens, self.gate_up_proj[expert, :intermediate])
        up = F.linear(tokens, self.gate_up_proj[expert, intermediate:])
        outputs.append(F.linear(self.act_fn(gate) * up, self.down_proj[expert]))
        start += count
    outs = torch.cat(outputs, dim=0)
    unsorted = torch.empty_like(outs)
    unsorted[order] = outs
    weighted = unsorted.view(*top_k_index.shape, -1).float() * top_k_weights.unsqueeze(-1).float()
    return weighted.sum(dim=1).to(hidden_states.dtype)


ALL_EXPERTS_FUNCTIONS.register("original_loop", original_loop_experts_forward)


def interleaved_medians(cases: dict, rounds: int) -> dict:
    """Median seconds of each case, `{name: (setup, run)}`, timed in rounds that run every case once.

    Interleaving makes a change in the machine's load hit every case alike; on a shared machine the ratios stay
    meaningful where back-to-back blocks of repeats would not. `setup` (untimed) runs before each timed `run`.
    """
    times = {name: [] for name in cases}
    with torch.no_grad():
        for setup, run in cases.values():  # warm-up
            setup()
            run()
        for _ in range(rounds):
            for name, (setup, run) in cases.items():
                setup()
                _sync()
                start = time.perf_counter()
                run()
                _sync()  # kernels run asynchronously on a GPU: time them, not their launch
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--expert-size", type=int, default=None, help="moe_intermediate_size (default: hidden / 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--max-gather-gb", type=float, default=2.0)
    args = parser.parse_args()

    torch.manual_seed(0)
    expert_size = args.expert_size or args.hidden // 2
    config = LLaDAUniConfig(
        vocab_size=8192, image_token_offset=4096, image_codebook_size=4096, mask_token_id=4095, eos_token_id=4094,
        pad_token_id=4094, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=2, head_dim=args.hidden // 8,
        num_experts=args.experts, num_experts_per_tok=args.top_k, n_group=8, topk_group=4,
        moe_intermediate_size=expert_size, first_k_dense_replace=1,
    )
    dtype = getattr(torch, args.dtype)
    model = LLaDAUniForConditionalGeneration(config).to(args.device, dtype).eval()
    # Read before the loop below switches implementations: the model and its config share the setting.
    default = model.config._experts_implementation
    ids = torch.randint(0, 4096, (1, args.tokens), device=args.device)
    print(f"config: hidden {args.hidden}, {args.experts} experts of size {expert_size}, top {args.top_k}, {args.layers} layers "
          f"({args.layers - 1} MoE), {args.tokens} tokens, {args.dtype} on {args.device}")

    # batched_mm gathers one weight matrix per (token, expert) pair: fine for decoding a few tokens, not for a
    # 1024-token window on a small machine.
    gathered_bytes = args.tokens * args.top_k * 3 * args.hidden * expert_size * dtype.itemsize
    names = ["original_loop", "eager", "grouped_mm"]
    if gathered_bytes <= args.max_gather_gb * 2**30:
        names.append("batched_mm")
    logits = {}

    def forward(name):
        logits[name] = model(ids).logits

    whole = interleaved_medians(
        {name: (lambda n=name: model.set_experts_implementation(n), lambda n=name: forward(n)) for name in names},
        args.repeats,
    )
    reference = logits["original_loop"]
    print("whole forward:")
    for name in names:
        if name == "original_loop":
            print(f"{'original per-expert loop':>26}: {whole[name] * 1e3:8.1f} ms  (baseline)")
            continue
        err = ((logits[name] - reference).abs().max() / reference.abs().max()).item()
        tag = " (default)" if name == default else ""
        print(f"{name + tag:>26}: {whole[name] * 1e3:8.1f} ms  speed-up x{whole['original_loop'] / whole[name]:5.2f}"
              f"  max rel diff {err:.1e}")
    if "batched_mm" not in names:
        print(f"{'batched_mm':>26}: skipped, would gather {gathered_bytes / 2**30:.1f} GiB of expert weights "
              f"(raise --max-gather-gb to run it)")

    experts_only = time_experts_only(model, ids, args.repeats * 3, names, args.top_k)
    print("routed experts of one MoE layer alone (same hidden states and routing):")
    for name in [*names, "dense"]:
        seconds = experts_only[name]
        label = "dense GEMMs, same FLOPs" if name == "dense" else name + (" (default)" if name == default else "")
        note = ("  <- ceiling: no routing, gather or scatter; no experts implementation can beat it on this device"
                if name == "dense" else "")
        print(f"{label:>26}: {seconds * 1e3:8.2f} ms  speed-up x{experts_only['original_loop'] / seconds:5.2f}{note}")
    # Only the routed experts differ between the implementations; the rest of the forward is a fixed cost.
    moe_layers = sum(hasattr(layer.mlp, "experts") for layer in model.model.layers)
    best_whole = whole["original_loop"] - moe_layers * (experts_only["original_loop"] - experts_only["dense"])
    print(f"whole-forward ceiling (every MoE layer's experts at the dense time): {best_whole * 1e3:.1f} ms, "
          f"x{whole['original_loop'] / best_whole:.2f} over the loop")


def time_experts_only(model, ids, rounds, names, top_k):
    """The routed-experts call of one MoE layer alone, on the hidden states and routing that layer really sees, and
    the same FLOPs as two dense GEMMs (`"dense"`: every token copy through one weight matrix).

    The dense case is a ceiling: where it is below a goal (a compute-bound CPU, on which the per-expert loop already
    runs its GEMMs near peak), no experts implementation can meet that goal on the device.
    """
    experts = next(layer.mlp.experts for layer in model.model.layers if hasattr(layer.mlp, "experts"))
    captured = {}
    handle = experts.register_forward_pre_hook(lambda module, args: captured.setdefault("args", args))
    with torch.no_grad():
        model(ids)
    handle.remove()
    hidden, indices, weights = captured["args"]
    rows = torch.randn(ids.shape[1] * top_k, hidden.shape[-1], device=hidden.device, dtype=hidden.dtype)
    gate_up, down = experts.gate_up_proj[0], experts.down_proj[0]

    def dense():
        gate, up = F.linear(rows, gate_up).chunk(2, dim=-1)
        return F.linear(experts.act_fn(gate) * up, down)

    cases = {
        name: (lambda n=name: model.set_experts_implementation(n), lambda: experts(hidden, indices, weights))
        for name in names
    }
    cases["dense"] = (lambda: None, dense)
    return interleaved_medians(cases, rounds)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
