"""SPRINT's pruned prefix cache against the original, its pinning switches, rows that see nothing, and the original's
signature defaults."""

import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as hf_logging

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import generation_llada_uni
from transformers_llada_uni.generation_llada_uni import LLaDAUniGenerationConfig, sprint_importance
from transformers_llada_uni.prompting_llada_uni import build_text_to_image_unconditional_prompt

from conftest import TINY_RELEASED
from generation_testing import expected, model, quiet, tokenizer  # noqa: F401  (fixtures)


pytestmark = pytest.mark.usefixtures("single_thread", "quiet")


# ------------------------------------------------------------------------------------------------ parity
def test_pruned_sprint_matches_reference(model, tokenizer):
    case = expected("t2i_sprint_pruned")
    result = model.generate_image(case["prompt"], tokenizer=tokenizer, **case["kwargs"])
    assert result.token_ids.tolist() == case["result"]["token_ids"]
    assert (result.h, result.w) == (case["result"]["h"], case["result"]["w"])
    assert result.sequences[0].tolist() == case["output_ids"]
    assert result.sequences[0, : len(case["input_ids"])].tolist() == case["input_ids"]
    assert build_text_to_image_unconditional_prompt(tokenizer, result.h, result.w) == case["uncond_ids"]
    # every pruning the original made: prefix length (padded canvas columns) and kept count per branch
    assert result.sprint_prunes == case["sprint_prunes"]
    assert result.sprint_cached_forwards == case["sprint_cached_forwards"]


# ------------------------------------------------------------------------------------------------ pinning
def test_importance_ranks_pinned_tokens_first_then_by_confidence_alone():
    keys = torch.randn(1, 2, 6, 4, generator=torch.Generator().manual_seed(0))
    visible = torch.ones(1, 6, dtype=torch.bool)
    confidence = torch.tensor([[0.1, 0.9, 0.2, 0.3, 0.8, 0.5]])
    pinned = torch.tensor([[True, False, False, True, False, False]])
    score = sprint_importance(keys, pinned, visible, confidence, alpha=0.5)
    # the original's quirk: pinned are NaN (ranked first by topk), unpinned lose their key-norm term
    assert torch.isnan(score[0, [0, 3]]).all()
    torch.testing.assert_close(score[0, [1, 2, 4, 5]], 0.5 * confidence[0, [1, 2, 4, 5]])
    assert set(score.topk(2).indices[0].tolist()) == {0, 3}
    assert score.topk(4).indices[0, 2:].tolist() == [1, 4]

    # nothing pinned: alpha on the key norm (averaged over heads) divided by its MEAN over the prefix
    none = torch.zeros_like(pinned)
    norm = keys.norm(dim=-1).mean(dim=1)
    torch.testing.assert_close(sprint_importance(keys, none, visible, confidence, alpha=0.3),
                               0.3 * norm / norm.mean(dim=1, keepdim=True) + 0.7 * confidence)
    # columns outside the row's prefix are never chosen
    hidden = visible.clone()
    hidden[0, :2] = False
    score = sprint_importance(keys, none, hidden, confidence, alpha=0.3)
    assert (score[0, :2] == float("-inf")).all() and torch.isfinite(score[0, 2:]).all()


SWITCHES = [
    {},  # the original's defaults: text pinned, images prunable
    {"image_keep_ratio": 1.0},  # images pinned too
    {"text_keep_ratio": 0.5},  # nothing pinned
    {"text_keep_ratio": 0.5, "image_keep_ratio": 1.0},  # images pinned, text prunable
]


def expected_kept(prune, keep_ratio, switches):
    pinned = 0
    if switches.get("text_keep_ratio") is None or switches["text_keep_ratio"] >= 1:
        pinned += prune["text_tokens"]
    if switches.get("image_keep_ratio") is not None and switches["image_keep_ratio"] >= 1:
        pinned += prune["image_tokens"]
    return min(prune["prefix_len"], max(max(1, int(prune["prefix_len"] * keep_ratio)), pinned))


@pytest.mark.parametrize("switches", SWITCHES, ids=["defaults", "images-pinned", "text-prunable", "text-prunable-images-pinned"])
@pytest.mark.parametrize("mode", ["text", "understanding", "text_to_image"])
def test_pruning_follows_the_keep_switches(model, tokenizer, mode, switches):
    keep_ratio = 0.3
    settings = dict(use_sprint=True, keep_ratio=keep_ratio, steps=4, block_length=8, **switches)
    image = expected("edit")["image_token_ids"]  # 64 image ids (8 x 8)
    if mode == "text":
        prompt = torch.tensor([tokenizer("<role>HUMAN</role>Tell me about the fox.<role>ASSISTANT</role>",
                                         add_special_tokens=False).input_ids])
        output = model.generate(prompt, tokenizer=tokenizer, gen_length=24, return_dict_in_generate=True, **settings)
        prunes = output.sprint_prunes[0]
        assert output.sequences.shape[0] == 1
    elif mode == "understanding":
        result = model.understand_image(image, 8, 8, "What is it?", tokenizer=tokenizer, gen_length=24,
                                        return_dict=True, **settings)
        prunes = result.sprint_prunes
        assert all(prune["image_tokens"] >= 64 for prune in prunes)
    else:
        result = model.generate_image("A fox", tokenizer=tokenizer, image_h=256, image_w=256, **settings)
        prunes = result.sprint_prunes
        assert ((result.token_ids >= 0) & (result.token_ids < 64)).all()
        assert {prune["branch"] for prune in prunes} == {"conditional", "unconditional"}
    assert prunes
    for prune in prunes:
        assert prune["kept"] == expected_kept(prune, keep_ratio, switches), prune
    if switches.get("text_keep_ratio") is not None:
        assert any(prune["kept"] < prune["prefix_len"] for prune in prunes)


def test_deprecated_switch_names_map_to_the_original_ratios(model, tokenizer):
    logger = hf_logging.get_logger(generation_llada_uni.__name__)
    with CaptureLogger(logger) as captured:
        config = model._generation_settings(sprint_keep_image=True, sprint_keep_text=False)
    assert (config.image_keep_ratio, config.text_keep_ratio) == (1.0, 0.0)
    assert "deprecated" in captured.out
    loaded = LLaDAUniGenerationConfig.from_dict({"sprint_keep_text": True, "sprint_keep_image": False})
    assert (loaded.text_keep_ratio, loaded.image_keep_ratio) == (None, None)


def test_thinking_phase_uses_sprint_and_its_own_settings(model, tokenizer, monkeypatch):
    seen = []
    original = type(model)._decode

    def spy(self, branch_prompts, gen_length, config, *args, **kwargs):
        seen.append((gen_length, config.steps, config.use_sprint, config.keep_ratio))
        return original(self, branch_prompts, gen_length, config, *args, **kwargs)

    monkeypatch.setattr(type(model), "_decode", spy)
    result = model.generate_image("A fox", tokenizer=tokenizer, mode="thinking", image_h=256, image_w=256,
                                  block_length=8, steps=4, thinking_steps=2, thinking_gen_length=16, use_sprint=True,
                                  keep_ratio=0.5)
    assert seen == [(16, 2, True, 0.5), (64, 4, True, 0.5)]
    assert result.sprint_prunes


# ------------------------------------------------------------------------------------------------ padded rows
ROWS_SCRIPT = """
import sys, torch
import transformers_llada_uni
from transformers import AutoModelForCausalLM
torch.set_num_threads(1)
block = 8
ids = torch.randint(0, 700, (2, 3 * block), generator=torch.Generator().manual_seed(0))
cols = torch.arange(3 * block)
mask4d = ((cols[None, :] // block) <= (cols[:, None] // block))[None, None].repeat(2, 1, 1, 1)
mask4d[1, :, :, : 2 * block] = False  # row 1: two whole blocks of left padding, as a shorter guidance branch
mask2d = torch.ones(2, 3 * block, dtype=torch.long)
mask2d[1, : 2 * block] = 0
positions = torch.stack([cols, (cols - 2 * block).clamp(min=0)])
for implementation in sys.argv[2].split(","):
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], attn_implementation=implementation).eval()
    seen = []
    for layer in model.model.layers:
        layer.attention.dense.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        for mask in (mask4d, mask2d):
            seen.clear()
            logits = model(ids, attention_mask=mask, position_ids=positions, block_length=block).logits
            assert torch.isfinite(logits).all(), implementation
            for attention_output in seen:
                assert torch.isfinite(attention_output).all(), implementation
                # rows that see nothing: zero, as sdpa gives
                assert (attention_output[1, : 2 * block] == 0).all(), implementation
                assert (attention_output[1, 2 * block :] != 0).any() and (attention_output[0] != 0).any()
            torch.save(logits, f"{sys.argv[3]}-{implementation}-" + ("4d" if mask is mask4d else "2d"))
"""

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention")


def test_rows_that_see_nothing_get_a_zero_attention_output(tmp_path):
    # In one fresh interpreter for every backend: flex attention compiles, and torch's
    # CPU inductor must not see other shapes first.
    out = tmp_path / "logits"
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(ROWS_SCRIPT), str(TINY_RELEASED),
                             ",".join(ATTENTION_IMPLEMENTATIONS), str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED, attn_implementation="sdpa").eval()
    ids = torch.randint(0, 700, (2, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, :16] = 0
    positions = torch.stack([torch.arange(24), (torch.arange(24) - 16).clamp(min=0)])
    with torch.no_grad():
        reference = model(ids, attention_mask=mask, position_ids=positions, block_length=8).logits
    for implementation in ATTENTION_IMPLEMENTATIONS:
        four_d, two_d = (torch.load(f"{out}-{implementation}-{kind}", weights_only=True) for kind in ("4d", "2d"))
        torch.testing.assert_close(four_d, two_d)
        # other kernels: float32 noise only
        torch.testing.assert_close(four_d, reference, rtol=1e-4, atol=1e-4, msg=lambda m: f"{implementation}: {m}")


# ------------------------------------------------------------------------------------------------ defaults
# The original's signature defaults (issue 18 item 6 and the original's `generate_bd` / `generate_image` /
# `understand_image` / `edit_image`).
ORIGINAL_DEFAULTS = {
    "block_length": 32,
    "steps": 32,
    "gen_length": 2048,
    "threshold": 0.95,
    "image_steps": 16,
    "image_h": 1024,
    "image_w": 1024,
    "cfg_scale": 4.0,
    "edit_steps": 8,
    "cfg_text_scale": 4.0,
    "cfg_image_scale": 0.0,
    "thinking_steps": 32,
    "thinking_gen_length": 4096,
    "use_sprint": False,
    "keep_ratio": 0.7,
    "cache_warmup_steps": 2,
    "confidence_alpha": 0.5,
    "text_keep_ratio": None,
    "image_keep_ratio": None,
}


def test_generation_config_holds_the_original_defaults(model, tmp_path):
    for config in (LLaDAUniGenerationConfig(), model.generation_config):
        assert {name: getattr(config, name) for name in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS
    LLaDAUniGenerationConfig().save_pretrained(tmp_path)
    reloaded = LLaDAUniGenerationConfig.from_pretrained(tmp_path)
    assert {name: getattr(reloaded, name) for name in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS


class _Stop(Exception):
    pass


def test_modes_called_with_required_arguments_use_the_original_defaults(model, tokenizer, monkeypatch):
    seen = []

    def record(self, branch_prompts, gen_length, config, guidance, *args, **kwargs):
        seen.append(dict(gen_length=gen_length, steps=config.steps, block_length=config.block_length,
                         cfg_scale=guidance.scale, text_scale=guidance.text_scale, use_sprint=config.use_sprint,
                         keep_ratio=config.keep_ratio, warmup=config.cache_warmup_steps,
                         alpha=config.confidence_alpha))
        raise _Stop

    monkeypatch.setattr(type(model), "_decode", record)
    image = expected("edit")["image_token_ids"]
    calls = {
        "generate": lambda: model.generate(torch.tensor([[991, 39]]), tokenizer=tokenizer),
        "understand_image": lambda: model.understand_image(image, 8, 8, "What is it?", tokenizer=tokenizer),
        "generate_image": lambda: model.generate_image("A fox", tokenizer=tokenizer),
        "thinking": lambda: model.generate_image("A fox", tokenizer=tokenizer, mode="thinking"),
        "edit_image": lambda: model.edit_image(image, 8, 8, "Make it red.", tokenizer=tokenizer),
    }
    for call in calls.values():
        with pytest.raises(_Stop):
            call()
    sprint = dict(use_sprint=False, keep_ratio=0.7, warmup=2, alpha=0.5)
    assert seen == [
        dict(gen_length=2048, steps=32, block_length=32, cfg_scale=1.0, text_scale=0.0, **sprint),
        dict(gen_length=2048, steps=32, block_length=32, cfg_scale=1.0, text_scale=0.0, **sprint),
        dict(gen_length=1024, steps=16, block_length=32, cfg_scale=4.0, text_scale=0.0, **sprint),  # 32 x 32 codes
        dict(gen_length=4096, steps=32, block_length=32, cfg_scale=1.0, text_scale=0.0, **sprint),  # thinking phase
        dict(gen_length=64, steps=8, block_length=32, cfg_scale=1.0, text_scale=4.0, **sprint),
    ]
