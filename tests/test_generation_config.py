"""Every mode reads the generation config the way `generate` does: keyword > `generation_config=` >
`model.generation_config` > defaults."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import LLaDAUniGenerationConfig

from conftest import TINY_RELEASED
from generation_testing import expected, quiet, tokenizer  # noqa: F401  (fixtures)


pytestmark = pytest.mark.usefixtures("single_thread", "quiet")


@pytest.fixture(scope="module")
def image():
    return expected("edit")["image_token_ids"]  # 8 x 8 image ids


class _Stop(Exception):
    pass


def settings_seen(model, monkeypatch):
    """Record what each mode hands the engine (sample length, steps, guidance, SPRINT...) and stop there."""
    seen = []

    def record(self, branch_prompts, gen_length, config, guidance, *args, **kwargs):
        seen.append(dict(
            gen_length=gen_length, steps=config.steps, block_length=config.block_length, threshold=config.threshold,
            cfg=(guidance.scale, guidance.text_scale, guidance.image_scale), use_sprint=config.use_sprint,
            keep_ratio=config.keep_ratio, warmup=config.cache_warmup_steps, alpha=config.confidence_alpha,
        ))
        raise _Stop

    monkeypatch.setattr(type(model), "_decode", record)
    return seen


def run_every_mode(model, tokenizer, image, **kwargs):
    calls = [
        lambda: model.generate(torch.tensor([[991, 39]]), tokenizer=tokenizer, **kwargs),
        lambda: model.understand_image(image, 8, 8, "What is it?", tokenizer=tokenizer, **kwargs),
        lambda: model.generate_image("A fox", tokenizer=tokenizer, **kwargs),
        lambda: model.generate_image("A fox", tokenizer=tokenizer, mode="thinking", **kwargs),
        lambda: model.edit_image(image, 8, 8, "Make it red.", tokenizer=tokenizer, **kwargs),
    ]
    for call in calls:
        with pytest.raises(_Stop):
            call()


NON_DEFAULT = dict(
    block_length=16, steps=3, gen_length=40, threshold=0.9, image_steps=5, image_h=256, image_w=320, cfg_scale=2.5,
    edit_steps=6, cfg_text_scale=3.0, cfg_image_scale=1.5, thinking_steps=7, thinking_gen_length=24, use_sprint=True,
    keep_ratio=0.6, cache_warmup_steps=1, confidence_alpha=0.25,
)


def expected_calls(values):
    shared = dict(block_length=values["block_length"], threshold=values["threshold"], use_sprint=values["use_sprint"],
                  keep_ratio=values["keep_ratio"], warmup=values["cache_warmup_steps"],
                  alpha=values["confidence_alpha"])
    grid = (values["image_h"] // 32) * (values["image_w"] // 32)
    return [
        dict(gen_length=values["gen_length"], steps=values["steps"], cfg=(1.0, 0.0, 0.0), **shared),
        dict(gen_length=values["gen_length"], steps=values["steps"], cfg=(1.0, 0.0, 0.0), **shared),
        dict(gen_length=grid, steps=values["image_steps"], cfg=(values["cfg_scale"], 0.0, 0.0), **shared),
        dict(gen_length=values["thinking_gen_length"], steps=values["thinking_steps"], cfg=(1.0, 0.0, 0.0), **shared),
        dict(gen_length=64, steps=values["edit_steps"],
             cfg=(1.0, values["cfg_text_scale"], values["cfg_image_scale"]), **shared),
    ]


def test_every_mode_uses_a_saved_generation_config(tmp_path, tokenizer, image, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    for name, value in NON_DEFAULT.items():
        setattr(model.generation_config, name, value)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert {name: saved[name] for name in NON_DEFAULT} == NON_DEFAULT
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    seen = settings_seen(reloaded, monkeypatch)
    run_every_mode(reloaded, tokenizer, image)
    assert seen == expected_calls(NON_DEFAULT)


def test_keywords_beat_the_passed_config_which_beats_the_models(tokenizer, image, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    for name, value in NON_DEFAULT.items():
        setattr(model.generation_config, name, value)
    seen = settings_seen(model, monkeypatch)

    # a plain GenerationConfig only sets what it names; the rest comes from the model's config
    passed = GenerationConfig(threshold=0.8, block_length=8)
    run_every_mode(model, tokenizer, image, generation_config=passed)
    assert seen == expected_calls({**NON_DEFAULT, "threshold": 0.8, "block_length": 8})

    # a full LLaDAUniGenerationConfig sets every diffusion field: its defaults replace the model's values
    seen.clear()
    run_every_mode(model, tokenizer, image, generation_config=LLaDAUniGenerationConfig(image_h=256, image_w=256))
    defaults = {name: getattr(LLaDAUniGenerationConfig(), name) for name in NON_DEFAULT}
    assert seen == expected_calls({**defaults, "image_h": 256, "image_w": 256})

    # keywords (the shared names: `steps` is each mode's own steps) win over both
    seen.clear()
    run_every_mode(model, tokenizer, image, generation_config=passed, steps=2, threshold=0.7)
    expected = expected_calls({**NON_DEFAULT, "threshold": 0.7, "block_length": 8, "steps": 2, "image_steps": 2,
                               "edit_steps": 2})
    expected[3]["steps"] = NON_DEFAULT["thinking_steps"]  # thinking's reasoning phase has `thinking_steps=`
    assert seen == expected


def test_no_mode_has_setting_defaults_in_its_signature():
    import inspect

    from transformers_llada_uni.generation_llada_uni import LLaDAUniGenerationMixin

    fields = set(LLaDAUniGenerationConfig().to_dict()) | {"gen_length", "max_new_tokens"}
    for method in ("generate", "understand_image", "generate_image", "edit_image"):
        signature = inspect.signature(getattr(LLaDAUniGenerationMixin, method))
        for name, parameter in signature.parameters.items():
            if name in fields:
                assert parameter.default is None, f"{method}({name}={parameter.default!r})"
