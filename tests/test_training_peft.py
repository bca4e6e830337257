"""What trains: LoRA through PEFT (default targets, frozen router, save/load, merge, routed experts opt-in, target
errors) and full fine-tuning with the router frozen."""

import pytest
import torch
from peft import PeftModel

import transformers_llada_uni  # noqa: F401
from transformers import AutoModelForCausalLM
from transformers_llada_uni.training_peft_llada_uni import (
    adapter_size_bytes,
    get_llada_uni_peft_model,
    llada_uni_lora_config,
    prepare_llada_uni_full_finetuning,
)


pytestmark = pytest.mark.usefixtures("single_thread")


def load(tiny_dir, dtype=torch.float32):
    # float64 makes merge-vs-adapter differences pure algebra, not float32 rounding of O(10) logits
    return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=dtype, experts_implementation="eager").eval()


def max_relative_difference(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def sample_ids(config, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.image_token_offset, (2, 24), generator=generator)


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), block_length=8).logits


def test_default_targets_and_frozen_router(tiny_released_dir):
    model = load(tiny_released_dir)
    peft_model = get_llada_uni_peft_model(model, r=4)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in peft_model.named_parameters() if ".lora_A" in name}
    layers = model.config.num_hidden_layers
    for i in range(layers):
        assert any(n.endswith(f"layers.{i}.attention.query_key_value") for n in adapted)
        assert any(n.endswith(f"layers.{i}.attention.dense") for n in adapted)
    assert any(n.endswith("layers.0.mlp.gate_proj") for n in adapted)  # dense MLP
    assert any(n.endswith("layers.1.mlp.shared_experts.down_proj") for n in adapted)
    assert not any(".experts." in n or n.endswith("mlp.gate") or "lm_head" in n for n in adapted)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    for name, buffer in peft_model.named_buffers():
        if name.endswith("expert_bias"):
            assert not buffer.requires_grad
    assert adapter_size_bytes(peft_model) == sum(
        p.numel() * p.element_size() for name, p in peft_model.named_parameters() if "lora_" in name
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adapter_save_load_and_merge(tiny_released_dir, tmp_path, dtype):
    model = load(tiny_released_dir, dtype)
    ids = sample_ids(model.config)
    base_logits = logits(model, ids)
    # Random B so the adapter changes the output (PEFT's default init is an identity adapter).
    peft_model = get_llada_uni_peft_model(model, r=4, init_lora_weights=False).eval()
    adapted_logits = logits(peft_model, ids)
    assert not torch.allclose(adapted_logits, base_logits, atol=1e-3)

    peft_model.save_pretrained(tmp_path / "adapter")
    files = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert "adapter_model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)

    reloaded = PeftModel.from_pretrained(load(tiny_released_dir, dtype), tmp_path / "adapter").eval()
    assert torch.equal(logits(reloaded, ids), adapted_logits)

    merged = reloaded.merge_and_unload()
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    merged_logits = logits(merged, ids)
    if dtype == torch.float64:
        assert torch.allclose(merged_logits, adapted_logits, atol=1e-5, rtol=0)
    else:
        assert max_relative_difference(merged_logits, adapted_logits) < 1e-5


def test_routed_experts_opt_in_through_target_parameters(tiny_released_dir):
    model = load(tiny_released_dir, torch.float64)
    ids = sample_ids(model.config, seed=1)
    config = llada_uni_lora_config(r=2, train_routed_experts=True, init_lora_weights=False)
    assert set(config.target_parameters) == {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}
    peft_model = get_llada_uni_peft_model(model, config).eval()
    expert_lora = [n for n, p in peft_model.named_parameters() if "experts" in n and "lora_" in n and p.requires_grad]
    assert expert_lora
    adapted = logits(peft_model, ids)
    assert not torch.allclose(adapted, logits_without_adapter(peft_model, ids), atol=1e-3)
    merged = peft_model.merge_and_unload()
    assert torch.allclose(logits(merged, ids), adapted, atol=1e-5, rtol=0)


def logits_without_adapter(peft_model, ids):
    with peft_model.disable_adapter():
        return logits(peft_model, ids)


def test_lora_target_matching_nothing_is_rejected(tiny_released_dir):
    model = load(tiny_released_dir)
    with pytest.raises(ValueError, match="'q_proj' matches no module"):
        get_llada_uni_peft_model(model, target_modules=["q_proj"])
    with pytest.raises(ValueError, match="matches no module"):
        get_llada_uni_peft_model(model, target_modules=r".*\.self_attn\.o_proj")
    with pytest.raises(ValueError, match="'mlp.experts.w1' matches no parameter"):
        get_llada_uni_peft_model(model, target_parameters=["mlp.experts.w1"])
    with pytest.raises(ValueError, match="router"):
        get_llada_uni_peft_model(model, target_modules=["gate"])
    with pytest.raises(TypeError, match="LoraConfig"):
        get_llada_uni_peft_model(model, {"r": 4})


def test_full_finetuning_freezes_only_the_router(tiny_released_dir):
    model = prepare_llada_uni_full_finetuning(load(tiny_released_dir))
    frozen = sorted(name for name, p in model.named_parameters() if not p.requires_grad)
    moe_layers = model.config.num_hidden_layers - model.config.first_k_dense_replace
    assert frozen == sorted(f"model.layers.{i}.mlp.gate.weight" for i in range(1, 1 + moe_layers))
    assert all(not b.requires_grad for n, b in model.named_buffers() if n.endswith("expert_bias"))
    assert any(p.requires_grad for n, p in model.named_parameters() if n.endswith("experts.gate_up_proj"))
    with pytest.raises(ValueError, match="PEFT adapters"):
        prepare_llada_uni_full_finetuning(get_llada_uni_peft_model(load(tiny_released_dir), r=2))
