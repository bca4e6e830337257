"""Conversation turns with history reuse vs re-encoding the whole history each turn (issue 16).

A random model (the tiny tokenizer's 1088-id vocabulary, `--hidden` wide, `--layers` deep) holds a 5-turn
conversation with one picture (`--grid` x `--grid` codes) in every user turn; each turn answers `--answer` tokens.
Two ways, measured in the same run on the same model and messages:
  (a) reuse: `model.chat(messages, history=previous.history)`: the keys / values of the finished history blocks seed
      the engine's cache; only the new turn's blocks are run;
  (b) re-encode: `model.chat(messages)` without history: the first forward of every turn runs the whole history.
Both give the same ids (asserted on every run). Goal: (a)'s turn time flat in the number of turns, (b)'s growing with
the history. Each turn runs (a) and (b) `--repeats` times, interleaved and in alternating order (so a change of
machine load hits both alike), after one untimed warm-up turn; the table shows medians, the ratio (b) / (a) of the
medians and of the fastest runs, the prompt tokens (a) took from the history instead of running them, and the
forwards of the turn (the same for both: same ids) with the median time per forward, which separates the cost of the
history from the answer's length (answers end at EOS, so turns differ in forwards). A forward still attends to the
whole history (its keys / values), so (a)'s time per forward grows a little with it; (b) also runs it once per turn. The load average is printed before and after:
on a shared machine, read the ratios, not the seconds.

    python benchmarks/bench_chat.py             # hidden 256, 4 layers, 16 x 16 pictures, 5 turns, 3 repeats
    python benchmarks/bench_chat.py --small     # a quick run
"""

import argparse
import os
import pathlib
import statistics
import time

import torch
from transformers import PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration


FIXTURE_TOKENIZER = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny-llada2-uni"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--answer", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    # One thread by default: on a shared machine extra threads mostly measure the neighbours.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    if args.small:
        args.grid, args.answer, args.hidden, args.layers, args.block_length = 8, 16, 64, 2, 16
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(FIXTURE_TOKENIZER)
    config = LLaDAUniConfig(
        vocab_size=1088, image_token_offset=1024, hidden_size=args.hidden, intermediate_size=args.hidden * 2,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2, head_dim=args.hidden // 4,
        num_experts=16, num_experts_per_tok=4, n_group=4, topk_group=2, moe_intermediate_size=args.hidden // 2,
        num_shared_experts=1, first_k_dense_replace=1, block_length=args.block_length, pad_token_id=732,
        max_position_embeddings=8192,
    )
    model = LLaDAUniForConditionalGeneration(config).eval()
    model.set_experts_implementation("eager")
    model.set_tokenizer(tokenizer)
    settings = dict(steps=args.steps, block_length=args.block_length, max_new_tokens=args.answer)
    generator = torch.Generator().manual_seed(0)

    def picture():
        codes = torch.randint(0, 64, (args.grid * args.grid,), generator=generator) + 1024
        return {"image_tokens": codes.tolist(), "h": args.grid, "w": args.grid}

    questions = [{"role": "user", "content": [{"type": "image", "image": picture()},
                                              {"type": "text", "text": f"What changed in picture {turn + 1}?"}]}
                 for turn in range(args.turns)]
    print(f"model: hidden {args.hidden}, {args.layers} layers; {args.grid}x{args.grid} picture per turn, "
          f"{args.answer}-token answers, block {args.block_length}, {args.steps} steps per block, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved runs per turn")
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(),
                                                                                      os.cpu_count()))
    model.chat(questions[:1], **settings)  # warm-up (allocations, kernels), untimed

    def timed(messages, history):
        start = time.perf_counter()
        output = model.chat(messages, history=history, **settings)
        return time.perf_counter() - start, output

    print(f"{'turn':>4} {'prompt':>7} {'reused':>7} {'reuse s':>8} {'re-encode s':>12} {'ratio':>6} {'ratio(min)':>10} "
          f"{'forwards':>8} {'reuse ms/fwd':>12} {'re-encode ms/fwd':>16}")
    history = None
    reuse_times, full_times, per_forward = [], [], []
    for turn, question in enumerate(questions):
        messages = (history.messages if history else []) + [question]
        reuse_runs, full_runs = [], []
        for repeat in range(args.repeats):
            order = ((history, reuse_runs), (None, full_runs))
            for seed, runs in order if repeat % 2 == 0 else order[::-1]:
                runs.append(timed(messages, seed))
        reused = reuse_runs[0][1]
        for _, output in reuse_runs + full_runs:
            assert output.segments == reused.segments, f"turn {turn + 1}: reuse changed the ids"
        assert all(output.reused_tokens == 0 for _, output in full_runs)
        reuse_times.append(statistics.median(seconds for seconds, _ in reuse_runs))
        full_times.append(statistics.median(seconds for seconds, _ in full_runs))
        prompt = reused.sequences.shape[1] - sum(len(s.get("token_ids", [])) for s in reused.segments)
        fastest = min(seconds for seconds, _ in full_runs) / min(seconds for seconds, _ in reuse_runs)
        forwards = reused.num_forward_passes
        per_forward.append((reuse_times[-1] / forwards * 1e3, full_times[-1] / forwards * 1e3))
        print(f"{turn + 1:>4} {prompt:>7} {reused.reused_tokens:>7} {reuse_times[-1]:>8.3f} {full_times[-1]:>12.3f} "
              f"{full_times[-1] / reuse_times[-1]:>6.2f} {fastest:>10.2f} {forwards:>8} {per_forward[-1][0]:>12.1f} "
              f"{per_forward[-1][1]:>16.1f}")
        history = reused.history
    print(f"last / first turn time: reuse {reuse_times[-1] / reuse_times[0]:.2f}x, "
          f"re-encode {full_times[-1] / full_times[0]:.2f}x; per forward: reuse "
          f"{per_forward[-1][0] / per_forward[0][0]:.2f}x, re-encode {per_forward[-1][1] / per_forward[0][1]:.2f}x; "
          "same ids with and without reuse in every run")
    print("load average (1, 5, 15 min) after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
