"""QLoRA: 4-bit loading quantizes the routed experts too, and a LoRA step runs on top of it on the CPU; importing the
packages does not import bitsandbytes."""

import subprocess
import sys

import bitsandbytes as bnb  # a test dependency (pyproject `test` extra)
import pytest
import torch

import transformers_llada_uni  # noqa: F401
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from transformers_llada_uni.training_data_llada_uni import DataCollatorForMaskedDiffusion, LLaDAUniTrainingDataEncoder
from transformers_llada_uni.training_objective_llada_uni import MaskedDiffusionConfig, masked_diffusion_loss
from transformers_llada_uni.training_peft_llada_uni import (
    LLaDAUniExperts4bit,
    get_llada_uni_peft_model,
    load_llada_uni_4bit,
    quantize_routed_experts,
)


pytestmark = pytest.mark.usefixtures("single_thread")


def cpu_inference_packing_off():
    # bitsandbytes repacks 4-bit weights for a CPU inference kernel in eval mode, which needs output sizes divisible
    # by its tile (the tiny experts have 24 rows; real ones 512): train mode keeps the generic kernel.
    return True


def bnb_config():
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)


def expert_modules(model):
    return [m for m in model.modules() if isinstance(m, LLaDAUniExperts4bit)]


def assert_all_experts_quantized(model):
    experts = expert_modules(model)
    assert len(experts) == model.config.num_hidden_layers - model.config.first_k_dense_replace
    for module in experts:
        assert len(module) == model.config.num_experts
        for expert in module:
            for proj in (expert.gate_proj, expert.up_proj, expert.down_proj):
                assert isinstance(proj, bnb.nn.Linear4bit)
                assert not proj.weight.dtype.is_floating_point  # packed 4-bit codes
    assert not any(p.ndim == 3 and p.dtype.is_floating_point for _, p in model.named_parameters())


def dequantized(linear):
    # through the layer itself (identity input): independent of how the CPU backend packs the 4-bit codes
    linear.train(cpu_inference_packing_off())
    with torch.no_grad():
        return linear(torch.eye(linear.in_features)).T.float()


def test_plain_bnb_loading_leaves_fused_experts_in_full_precision(tiny_released_dir):
    # Why the helper exists: transformers quantizes 2-D linears only.
    model = AutoModelForCausalLM.from_pretrained(tiny_released_dir, quantization_config=bnb_config())
    fused = [p for n, p in model.named_parameters() if n.endswith("experts.gate_up_proj")]
    assert fused and all(p.dtype.is_floating_point for p in fused)
    # ... and the post-hoc helper fixes that model in place
    quantize_routed_experts(model, bnb_config())
    assert_all_experts_quantized(model)


def test_4bit_loading_quantizes_the_routed_experts(tiny_released_dir):
    reference = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    model = load_llada_uni_4bit(tiny_released_dir, bnb_config())
    assert model.is_loaded_in_4bit
    assert_all_experts_quantized(model)
    assert isinstance(model.model.layers[1].attention.query_key_value, bnb.nn.Linear4bit)
    assert model.model.layers[1].mlp.gate.weight.dtype == torch.float32  # router stays full precision
    assert model.get_memory_footprint() < 0.5 * reference.get_memory_footprint()

    # The checkpoint's per-expert tensors landed in the right experts (up to 4-bit rounding).
    fused = reference.model.layers[1].mlp.experts
    intermediate = fused.gate_up_proj.shape[1] // 2
    for e in (0, model.config.num_experts - 1):
        expert = model.model.layers[1].mlp.experts[e]
        for got, want in (
            (dequantized(expert.gate_proj), fused.gate_up_proj[e, :intermediate]),
            (dequantized(expert.up_proj), fused.gate_up_proj[e, intermediate:]),
            (dequantized(expert.down_proj), fused.down_proj[e]),
        ):
            error = (got - want).norm() / want.norm()
            assert error < 0.15, error
            other = fused.down_proj[(e + 1) % model.config.num_experts]
            if got.shape == other.shape:
                assert (got - other).norm() / other.norm() > 0.5

    ids = torch.randint(0, model.config.image_token_offset, (1, 16), generator=torch.Generator().manual_seed(0))
    # Quantizing while loading and quantizing an already loaded model give the same model.
    posthoc = quantize_routed_experts(
        AutoModelForCausalLM.from_pretrained(tiny_released_dir, quantization_config=bnb_config()), bnb_config()
    )
    model.train(cpu_inference_packing_off())
    posthoc.train(cpu_inference_packing_off())
    with torch.no_grad():
        quantized_logits = model(input_ids=ids).logits
        posthoc_logits = posthoc(input_ids=ids).logits
        full_logits = reference(input_ids=ids).logits
    assert torch.allclose(quantized_logits, posthoc_logits, atol=1e-5, rtol=1e-5)
    # nf4 on 64-wide random matrices is coarse, but the outputs still follow the full-precision model
    correlation = torch.corrcoef(torch.stack([quantized_logits.flatten(), full_logits.flatten()]))[0, 1]
    assert correlation > 0.5


@pytest.mark.parametrize("train_routed_experts", [False, True])
def test_lora_step_on_4bit_model_on_cpu(tiny_released_dir, train_routed_experts):
    model = load_llada_uni_4bit(tiny_released_dir, bnb_config())
    tokenizer = AutoTokenizer.from_pretrained(tiny_released_dir)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    examples = [encoder.encode({"prompt": "Say hi.", "response": "Hi there!"})]
    peft_model = get_llada_uni_peft_model(model, r=4, train_routed_experts=train_routed_experts)
    lora_names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert lora_names and all("lora_" in n for n in lora_names)
    assert any(".experts." in n for n in lora_names) == train_routed_experts

    config = MaskedDiffusionConfig(block_length=8)
    batch = DataCollatorForMaskedDiffusion(encoder.special, config, seed=0)(examples)
    trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    frozen_expert = peft_model.base_model.model.model.layers[1].mlp.experts[0].down_proj
    frozen_before = frozen_expert.weight.data.clone()
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2)
    loss = masked_diffusion_loss(peft_model, batch, config).loss
    assert torch.isfinite(loss)
    loss.backward()
    # every adapter gets a gradient, except routed experts that no token was sent to
    assert all(p.grad is not None for n, p in trainable.items() if "lora_B" in n and ".experts." not in n)
    if train_routed_experts:
        assert any(p.grad is not None for n, p in trainable.items() if "lora_B" in n and ".experts." in n)
    optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in trainable.items())
    base_layer = getattr(frozen_expert, "base_layer", frozen_expert)
    assert torch.equal(base_layer.weight.data, frozen_before)


def test_importing_the_packages_prints_no_bitsandbytes_notice():
    # transformers_llada_uni imports bitsandbytes only in its 4-bit functions; diffusers' quantizers and transformers'
    # Trainer import it whenever it is installed, and bitsandbytes then prints "Failed to load CPU gemm_4bit_forward
    # from kernels-community" (an optional kernel) unless the packages' filter is in place.
    code = (
        "import sys\n"
        "import transformers_llada_uni\n"
        "print('bitsandbytes' in sys.modules)\n"
        "import diffusers_llada_uni\n"
        "from transformers_llada_uni import LLaDAUniMaskedDiffusionTrainer\n"
        "import bitsandbytes\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False"]
    assert "gemm_4bit" not in result.stdout + result.stderr, result.stderr[-2000:]
