"""Forward time of each `experts_implementation` against the original per-expert loop, measured in one run.

The original LLaDA2.0 MoE sorts the token copies by expert and runs one SwiGLU (three matmuls) per expert that
received tokens. We register that loop as an experts implementation on the same fused weights, so every variant runs
the same model and the same inputs, and print each implementation's time as a ratio against it.

    python benchmarks/bench_moe.py                 # hidden 512, 64 experts, top 8, 1024 tokens
    python benchmarks/bench_moe.py --tokens 256    # quicker
"""

import argparse
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


def time_forward(model, ids, repeats):
    with torch.no_grad():
        model(ids)  # warm-up
        _sync(ids.device)
        start = time.perf_counter()
        for _ in range(repeats):
            logits = model(ids).logits
        _sync(ids.device)  # kernels run asynchronously on a GPU: time them, not their launch
    return (time.perf_counter() - start) / repeats, logits


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--max-gather-gb", type=float, default=2.0)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = LLaDAUniConfig(
        vocab_size=8192, image_token_offset=4096, image_codebook_size=4096, mask_token_id=4095, eos_token_id=4094,
        pad_token_id=4094, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=2, head_dim=args.hidden // 8,
        num_experts=args.experts, num_experts_per_tok=args.top_k, n_group=8, topk_group=4,
        moe_intermediate_size=args.hidden // 2, first_k_dense_replace=1,
    )
    dtype = getattr(torch, args.dtype)
    model = LLaDAUniForConditionalGeneration(config).to(args.device, dtype).eval()
    # Read before the loop below switches implementations: the model and its config share the setting.
    default = model.config._experts_implementation
    ids = torch.randint(0, 4096, (1, args.tokens), device=args.device)
    print(f"config: hidden {args.hidden}, {args.experts} experts, top {args.top_k}, {args.layers} layers "
          f"({args.layers - 1} MoE), {args.tokens} tokens, {args.dtype} on {args.device}")

    model.set_experts_implementation("original_loop")
    baseline, reference = time_forward(model, ids, args.repeats)
    print(f"{'original per-expert loop':>26}: {baseline * 1e3:8.1f} ms  (baseline)")
    # batched_mm gathers one weight matrix per (token, expert) pair: fine for decoding a few tokens, not for a
    # 1024-token window on a small machine.
    gathered_bytes = args.tokens * args.top_k * 3 * args.hidden * (args.hidden // 2) * dtype.itemsize
    for name in ("eager", "batched_mm", "grouped_mm"):
        if name == "batched_mm" and gathered_bytes > args.max_gather_gb * 2**30:
            print(f"{name:>26}: skipped, would gather {gathered_bytes / 2**30:.1f} GiB of expert weights "
                  f"(raise --max-gather-gb to run it)")
            continue
        model.set_experts_implementation(name)
        seconds, logits = time_forward(model, ids, args.repeats)
        err = ((logits - reference).abs().max() / reference.abs().max()).item()
        tag = " (default)" if name == default else ""
        print(f"{name + tag:>26}: {seconds * 1e3:8.1f} ms  speed-up x{baseline / seconds:5.2f}  max rel diff {err:.1e}")

    names = ["original_loop", "eager", "grouped_mm"]
    if gathered_bytes / args.layers <= args.max_gather_gb * 2**30:
        names.append("batched_mm")
    experts_only = time_experts_only(model, ids, args.repeats * 3, names)
    print("routed experts of one MoE layer alone (same hidden states and routing):")
    for name in names:
        seconds = experts_only[name]
        tag = " (default)" if name == default else ""
        print(f"{name + tag:>26}: {seconds * 1e3:8.2f} ms  speed-up x{experts_only['original_loop'] / seconds:5.2f}")
    floor = time_dense_floor(model, ids.shape[1], args.top_k, args.repeats * 3)
    print(
        f"{'dense GEMMs, same FLOPs':>26}: {floor * 1e3:8.2f} ms  speed-up x{experts_only['original_loop'] / floor:5.2f}"
        "  <- ceiling: no routing, gather or scatter; no experts implementation can beat it on this device"
    )


def time_experts_only(model, ids, repeats, names):
    """The routed-experts call of one MoE layer alone, on the hidden states and routing that layer really sees."""
    layer = next(layer for layer in model.model.layers if hasattr(layer.mlp, "experts"))
    captured = {}
    handle = layer.mlp.register_forward_pre_hook(lambda module, args: captured.setdefault("h", args[0]))
    with torch.no_grad():
        model(ids)
    handle.remove()
    hidden = captured["h"].reshape(-1, captured["h"].shape[-1])
    with torch.no_grad():
        _, weights, indices = layer.mlp.gate(hidden)
    weights = weights.to(hidden.dtype)
    results = {}
    for name in names:
        model.set_experts_implementation(name)
        with torch.no_grad():
            layer.mlp.experts(hidden, indices, weights)
            _sync(hidden.device)
            start = time.perf_counter()
            for _ in range(repeats):
                layer.mlp.experts(hidden, indices, weights)
            _sync(hidden.device)
        results[name] = (time.perf_counter() - start) / repeats
    return results


def time_dense_floor(model, tokens, top_k, repeats):
    """The routed experts' matmuls as if every token copy used one weight matrix: the same FLOPs in two large GEMMs.

    When this ceiling is below the goal on a device (a compute-bound CPU, where the per-expert loop already runs its
    GEMMs near peak), the goal cannot be met there by any experts implementation.
    """
    experts = next(layer.mlp.experts for layer in model.model.layers if hasattr(layer.mlp, "experts"))
    rows = torch.randn(tokens * top_k, experts.gate_up_proj.shape[-1], device=experts.gate_up_proj.device,
                       dtype=experts.gate_up_proj.dtype)
    gate_up, down = experts.gate_up_proj[0], experts.down_proj[0]

    def run():
        gate, up = F.linear(rows, gate_up).chunk(2, dim=-1)
        return F.linear(experts.act_fn(gate) * up, down)

    with torch.no_grad():
        run()
        _sync(rows.device)
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        _sync(rows.device)
    return (time.perf_counter() - start) / repeats


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
