"""Tensor parallel: `from_pretrained(..., tp_plan="auto")` under `torchrun --nproc_per_node 2` (CPU, gloo) computes
what one process computes, with tied and untied embeddings, and generates the same ids.

The test launches this file with torchrun; each rank runs `_worker` below.
"""

import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import TINY_RELEASED


def _save_checkpoints(root):
    """The tiny released weights as converted checkpoints, untied (as released) and tied."""
    from test_backbone import tiny_uni_config

    from transformers_llada_uni import LLaDAUniForConditionalGeneration

    released = AutoModelForCausalLM.from_pretrained(TINY_RELEASED).state_dict()
    for name, tied in (("untied", False), ("tied", True)):
        model = LLaDAUniForConditionalGeneration(tiny_uni_config(tie_word_embeddings=tied))
        weights = {k: v for k, v in released.items() if not (tied and k == "lm_head.weight")}
        model.load_state_dict(weights, strict=not tied)
        model.save_pretrained(root / name)
        AutoTokenizer.from_pretrained(TINY_RELEASED).save_pretrained(root / name)


def test_tp_plan_auto_matches_one_process(tmp_path):
    _save_checkpoints(tmp_path)
    path = os.pathsep.join(filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
         str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    for rank in (0, 1):
        for name in ("untied", "tied"):
            assert f"rank {rank} {name} OK" in result.stdout, result.stdout


def _worker(root):
    import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
    from torch.distributed.tensor import DTensor

    rank = int(os.environ["RANK"])
    ids = torch.randint(0, 1000, (2, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    for name in ("untied", "tied"):
        path = os.path.join(root, name)
        model = AutoModelForCausalLM.from_pretrained(path)
        sharded = AutoModelForCausalLM.from_pretrained(path, tp_plan="auto")

        # every kind of layer is split across the two ranks, not replicated
        layer = sharded.model.layers[1]
        config = sharded.config
        local = {
            "word_embeddings": sharded.model.word_embeddings.weight,
            "query_key_value": layer.attention.query_key_value.weight,
            "dense": layer.attention.dense.weight,
            "dense mlp": sharded.model.layers[0].mlp.gate_proj.weight,
            "shared expert": layer.mlp.shared_experts.down_proj.weight,
            "routed gate_up": layer.mlp.experts.gate_up_proj,
            "routed down": layer.mlp.experts.down_proj,
        }
        assert all(isinstance(p, DTensor) for p in local.values()), {k: type(p) for k, p in local.items()}
        assert local["word_embeddings"].to_local().shape[0] == config.vocab_size // 2
        assert local["routed gate_up"].to_local().shape == (
            config.num_experts, config.moe_intermediate_size, config.hidden_size
        )
        assert local["routed down"].to_local().shape[-1] == config.moe_intermediate_size // 2
        if config.tie_word_embeddings:
            assert sharded.lm_head.weight is sharded.model.word_embeddings.weight

        with torch.no_grad():
            expected = model(ids, attention_mask=mask, block_length=8).logits
            logits = sharded(ids, attention_mask=mask, block_length=8).logits
        assert not isinstance(logits, DTensor)
        # the same sums in another order: float32 rounding only
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())

        tokenizer = AutoTokenizer.from_pretrained(path)
        prompts = tokenizer(["Hello there", "Write a haiku about the sea"], return_tensors="pt", padding=True)
        settings = {"max_new_tokens": 16, "block_length": 8, "steps": 4, "show_progress_bar": False}
        assert torch.equal(sharded.generate(**prompts, **settings), model.generate(**prompts, **settings))
        print(f"rank {rank} {name} OK", flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1])
elif not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)
