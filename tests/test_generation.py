"""Block-diffusion generation against the original implementation's recordings (token ids must be equal)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni.generation_llada_uni import LLaDAUniGenerationConfig, LLaDAUniImageGenerationOutput

from conftest import TINY_RELEASED
from generation_testing import expected, model, quiet, tokenizer  # noqa: F401  (fixtures)


pytestmark = pytest.mark.usefixtures("single_thread", "quiet")


def test_generation_config_is_the_diffusion_subclass(model, tmp_path):
    assert isinstance(model.generation_config, LLaDAUniGenerationConfig)
    assert model.generation_config.use_cache is True
    model.generation_config.steps = 7
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["steps"] == 7 and saved["block_length"] == model.generation_config.block_length
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(reloaded.generation_config, LLaDAUniGenerationConfig)
    assert reloaded.generation_config.steps == 7
    model.generation_config.steps = 32


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_text_matches_reference(model, tokenizer, use_cache):
    case = expected("generate_text")
    prompt = torch.tensor([case["prompt_ids"]])
    output = model.generate(prompt, tokenizer=tokenizer, use_cache=use_cache, **case["kwargs"])
    assert output[0].tolist() == case["output_ids"]


def test_understand_matches_reference(model, tokenizer):
    case = expected("understand")
    result = model.understand_image(
        case["image_token_ids"], case["h"], case["w"], case["question"], tokenizer=tokenizer, return_dict=True,
        **case["kwargs"],
    )
    assert result.sequences[0].tolist() == case["output_ids"]
    assert result.text == case["text"]
    text = model.understand_image(
        case["image_token_ids"], h=case["h"], w=case["w"], question=case["question"], tokenizer=tokenizer,
        **case["kwargs"],
    )
    assert text == case["text"]


@pytest.mark.parametrize("use_cache", [True, False])
def test_text_to_image_matches_reference(model, tokenizer, use_cache):
    case = expected("t2i")
    result = model.generate_image(case["prompt"], tokenizer=tokenizer, use_cache=use_cache, **case["kwargs"])
    assert isinstance(result, LLaDAUniImageGenerationOutput)
    assert result.token_ids.tolist() == case["result"]["token_ids"]
    assert (result.h, result.w) == (case["result"]["h"], case["result"]["w"])


def test_text_to_image_sprint_matches_reference(model, tokenizer):
    case = expected("t2i_sprint_exact")
    result = model.generate_image(case["prompt"], tokenizer=tokenizer, **case["kwargs"])
    assert result.token_ids.tolist() == case["result"]["token_ids"]
    assert (result.h, result.w) == (case["result"]["h"], case["result"]["w"])


def test_edit_matches_reference(model, tokenizer):
    case = expected("edit")
    result = model.edit_image(
        case["image_token_ids"], case["h"], case["w"], case["instruction"], tokenizer=tokenizer, **case["kwargs"]
    )
    assert result.token_ids.tolist() == case["result"]["token_ids"]
    assert (result.h, result.w) == (case["result"]["h"], case["result"]["w"])


def test_tokenizer_set_on_the_model_is_used(model, tokenizer):
    case = expected("t2i")
    model.set_tokenizer(tokenizer)
    try:
        result = model.generate_image(case["prompt"], **case["kwargs"])
    finally:
        model.set_tokenizer(None)
    assert result.token_ids.tolist() == case["result"]["token_ids"]


PROMPTS = [
    "<role>HUMAN</role>Describe the red fox.<role>ASSISTANT</role>",
    "Hi",
    "<role>HUMAN</role>Write a long story about a fox in the snow and a river.<role>ASSISTANT</role>",
]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_generate_matches_single_prompts(model, tokenizer, padding_side):
    settings = dict(block_length=8, steps=4, gen_length=20, threshold=0.95)
    ids = [tokenizer(p, add_special_tokens=False).input_ids for p in PROMPTS]
    assert len({len(i) for i in ids}) == 3
    singles = [model.generate(torch.tensor([i]), tokenizer=tokenizer, **settings)[0] for i in ids]
    tokenizer.padding_side = padding_side
    try:
        batch = tokenizer(PROMPTS, add_special_tokens=False, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = "right"
    output = model.generate(batch.input_ids, attention_mask=batch.attention_mask, tokenizer=tokenizer, **settings)
    longest = max(len(i) for i in ids)
    for row, (prompt, single) in enumerate(zip(ids, singles)):
        start = longest - len(prompt)
        assert output[row, start : start + len(single)].tolist() == single.tolist()
        assert (output[row, :start] == model.config.pad_token_id).all()


@pytest.mark.parametrize("sprint", [None, dict(use_sprint=True, keep_ratio=1.0), dict(use_sprint=True, keep_ratio=0.5)])
def test_batched_generate_image_matches_single_prompts(model, tokenizer, sprint):
    settings = dict(image_h=256, image_w=256, steps=4, block_length=8, cfg_scale=3.0, **(sprint or {}))
    prompts = ["A red fox", "A cat sitting on a mat under the warm sun in the garden", "Sky"]
    singles = [model.generate_image(p, tokenizer=tokenizer, **settings).token_ids for p in prompts]
    batch = model.generate_image(prompts, tokenizer=tokenizer, **settings)
    assert isinstance(batch, list) and len(batch) == 3
    for single, result in zip(singles, batch):
        assert result.token_ids.tolist() == single.tolist()


def test_generation_works_through_remote_code_without_the_package(model, tmp_path):
    from safetensors.torch import save_file
    from subprocess_utils import run_without_package

    from transformers_llada_uni import LLaDA2MoeConfig, LLaDAUniConfig, LLaDAUniForConditionalGeneration

    released = LLaDA2MoeConfig.from_pretrained(TINY_RELEASED).to_dict()
    fields = {k: v for k, v in released.items() if k in LLaDAUniConfig.__dataclass_fields__ and k != "model_type"}
    fields.update(mask_token_id=735, eos_token_id=732, pad_token_id=732, block_length=8)
    converted = LLaDAUniForConditionalGeneration(LLaDAUniConfig(**fields))
    converted.load_state_dict(model.state_dict())
    converted.generation_config.steps = 4
    converted.save_pretrained(tmp_path)
    assert (tmp_path / "generation_llada_uni.py").exists() and (tmp_path / "prompting_llada_uni.py").exists()
    case = expected("generate_text")
    save_file({"ids": torch.tensor([case["prompt_ids"]]), "out": torch.tensor([case["output_ids"]])},
              tmp_path / "case.safetensors")
    result = run_without_package(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert type(model.generation_config).__name__ == "LLaDAUniGenerationConfig"
        assert model.generation_config.steps == 4
        case = load_file({str(tmp_path / "case.safetensors")!r})
        out = model.generate(case["ids"], gen_length=32, block_length=8, threshold=0.95, show_progress_bar=False)
        assert torch.equal(out, case["out"]), out
        print("REMOTE-GENERATE-OK")
        """
    )
    assert "REMOTE-GENERATE-OK" in result.stdout
