"""The MoE backbone against the original implementation's recordings, and its transformers integration."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.cache_utils import DynamicCache

from transformers_llada_uni import (
    LLaDA2MoeConfig,
    LLaDAUniConfig,
    LLaDAUniForConditionalGeneration,
    LLaDAUniModel,
)

from conftest import EXPECTED, REAL_FILES, TINY_RELEASED
from subprocess_utils import run_without_package


def max_rel_err(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(scope="module")
def forward_case():
    return load_file(EXPECTED / "forward.safetensors")


@pytest.fixture(scope="module")
def tiny():
    return AutoModelForCausalLM.from_pretrained(TINY_RELEASED)


def block_causal_4d(length, block_length):
    block = torch.arange(length) // block_length
    return (block[None, :] <= block[:, None])[None, None]


def tiny_uni_config(**overrides):
    """The tiny released config as a converted (`llada_uni`) config with the tiny tokenizer's ids."""
    released = LLaDA2MoeConfig.from_pretrained(TINY_RELEASED).to_dict()
    fields = {k: v for k, v in released.items() if k in LLaDAUniConfig.__dataclass_fields__}
    fields.update(mask_token_id=735, eos_token_id=732, pad_token_id=732, block_length=8)
    fields.pop("model_type", None)
    fields.update(overrides)
    return LLaDAUniConfig(**fields)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("experts_implementation", ["eager", "batched_mm", "grouped_mm"])
def test_released_checkpoint_reproduces_reference_logits(forward_case, attn_implementation, experts_implementation):
    model = AutoModelForCausalLM.from_pretrained(
        TINY_RELEASED, attn_implementation=attn_implementation, experts_implementation=experts_implementation
    )
    assert isinstance(model, LLaDAUniForConditionalGeneration)
    ids = forward_case["input_ids"]
    with torch.no_grad():
        full = model(ids).logits
        block4d = model(ids, attention_mask=block_causal_4d(ids.shape[1], 8)).logits
        block2d = model(ids, attention_mask=torch.ones_like(ids), block_length=8).logits
    assert full.dtype == torch.float32
    assert max_rel_err(full, forward_case["logits_full"]) <= 1e-5
    assert max_rel_err(block4d, forward_case["logits_block8"]) <= 1e-5
    assert max_rel_err(block2d, forward_case["logits_block8"]) <= 1e-5
    # the full and block-causal cases must really differ, or the mask is not being applied
    assert max_rel_err(full, forward_case["logits_block8"]) > 1e-3


def test_flex_attention_reproduces_reference_logits(forward_case):
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED, attn_implementation="flex_attention")
    sdpa = AutoModelForCausalLM.from_pretrained(TINY_RELEASED, attn_implementation="sdpa")
    # Generation first: left-padded prompts of two lengths, a cached prefix, query windows shorter than the keys.
    # (torch 2.13's CPU inductor miscompiles that case once it has compiled flex attention for other shapes in the
    # same process: a C++ codegen error, not a wrong result; GPUs use Triton kernels instead.)
    tokenizer = AutoTokenizer.from_pretrained(TINY_RELEASED)
    prompts = tokenizer(["Hello there", "Write a haiku about the sea"], return_tensors="pt", padding=True)
    settings = {"tokenizer": tokenizer, "gen_length": 16, "block_length": 8, "steps": 4, "show_progress_bar": False}
    assert torch.equal(model.generate(**prompts, **settings), sdpa.generate(**prompts, **settings))

    ids = forward_case["input_ids"]
    with torch.no_grad():
        assert max_rel_err(model(ids).logits, forward_case["logits_full"]) <= 1e-5
        block4d = model(ids, attention_mask=block_causal_4d(ids.shape[1], 8)).logits
        block2d = model(ids, attention_mask=torch.ones_like(ids), block_length=8).logits
    assert max_rel_err(block4d, forward_case["logits_block8"]) <= 1e-5
    assert max_rel_err(block2d, forward_case["logits_block8"]) <= 1e-5

    # Other lengths in the same process (the compiled kernels turn dynamic), against sdpa.
    for length in (24, 37):
        other = torch.randint(0, 100, (1, length), generator=torch.Generator().manual_seed(length))
        for kwargs in ({"attention_mask": block_causal_4d(length, 8)},
                       {"attention_mask": torch.ones_like(other), "block_length": 8}):
            with torch.no_grad():
                assert max_rel_err(model(other, **kwargs).logits, sdpa(other, **kwargs).logits) <= 1e-5, length


def test_forward_compiles_to_one_graph():
    # No host syncs or data-dependent branches in the forward: torch.compile sees one graph for every mask form, and
    # a fullgraph compile gives the eager logits.
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED).eval()
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    padded = torch.ones_like(ids)
    padded[0, :5] = 0  # left padding: fully masked query rows take the no-NaN path
    forms = {"no mask": {}, "4-D": {"attention_mask": block_causal_4d(16, 8).expand(2, 1, 16, 16)},
             "2-D": {"attention_mask": padded, "block_length": 8}}
    for implementation in ("sdpa", "eager"):
        model.set_attn_implementation(implementation)
        for name, kwargs in forms.items():
            explained = torch._dynamo.explain(model)(ids, **kwargs)
            assert explained.graph_break_count == 0, (implementation, name, explained.break_reasons)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(ids[:, :8], attention_mask=padded[:, :8], block_length=8, cache=cache, use_cache=True)
    explained = torch._dynamo.explain(model)(ids[:, 8:], attention_mask=padded, block_length=8,
                                             cache=cache, use_cache=False)
    assert explained.graph_break_count == 0, explained.break_reasons

    model.set_attn_implementation("sdpa")
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        expected = model(ids, **forms["2-D"]).logits
        assert max_rel_err(compiled(ids, **forms["2-D"]).logits, expected) <= 1e-5
    torch._dynamo.reset()


def test_config_defaults_are_the_released_values():
    config = LLaDAUniConfig()
    released = json.loads((REAL_FILES / "config.json").read_text())
    for key, value in released.items():
        if key in ("architectures", "auto_map", "model_type", "torch_dtype", "transformers_version", "rope_theta",
                   "partial_rotary_factor", "rope_parameters"):
            continue
        assert getattr(config, key) == value, key
    assert config.rope_parameters["rope_theta"] == released["rope_theta"]
    assert config.rope_parameters["partial_rotary_factor"] == released["partial_rotary_factor"]
    assert config.image_codebook_size == released["vocab_size"] - released["image_token_offset"]
    assert config.eos_token_id == config.pad_token_id == released["pad_token_id"]
    assert config.block_length == 32
    # the released config (model_type llada2_moe) reads with every field; ids it lacks are derived
    released_config = AutoConfig.from_pretrained(REAL_FILES)
    assert isinstance(released_config, LLaDA2MoeConfig)
    assert released_config.image_codebook_size == 16384
    assert released_config.eos_token_id == released["pad_token_id"]
    assert released_config.mask_token_id is None
    assert not hasattr(released_config, "auto_map")  # the original remote code is replaced by ours


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_key_value_heads"),
        ({"num_experts": 16, "n_group": 3}, "n_group"),
        ({"topk_group": 5, "n_group": 4}, "topk_group"),
        ({"num_experts_per_tok": 17, "num_experts": 16}, "num_experts_per_tok"),
        ({"image_token_offset": 1050, "image_codebook_size": 64}, "image_token_offset"),
        ({"block_length": 0}, "block_length"),
        ({"first_k_dense_replace": 9}, "first_k_dense_replace"),
        ({"mask_token_id": 1050}, "mask_token_id"),
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_uni_config(**overrides)


def test_save_and_reload_in_released_and_fused_layouts(tiny, tmp_path):
    ids = torch.randint(0, tiny.config.vocab_size, (2, 21), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = tiny(ids).logits

    tiny.save_pretrained(tmp_path / "released")  # default: the released per-expert layout
    with safe_open(tmp_path / "released" / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "model.layers.1.mlp.experts.0.gate_proj.weight" in keys
    assert not any(k.endswith("experts.gate_up_proj") for k in keys)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "released")
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, reference)

    tiny.save_pretrained(tmp_path / "fused", save_original_format=False)
    with safe_open(tmp_path / "fused" / "model.safetensors", "pt") as f:
        assert "model.layers.1.mlp.experts.gate_up_proj" in set(f.keys())
    fused = AutoModelForCausalLM.from_pretrained(tmp_path / "fused")
    original_state, fused_state = tiny.state_dict(), fused.state_dict()
    assert original_state.keys() == fused_state.keys()
    assert all(torch.equal(original_state[k], fused_state[k]) for k in original_state)
    with torch.no_grad():
        # Same weights; only the memory alignment of the memory-mapped tensors differs, which can change the
        # summation order of CPU kernels in the last bits.
        torch.testing.assert_close(fused(ids).logits, reference, rtol=1e-6, atol=1e-6 * reference.abs().max().item())


def test_remote_code_load_without_the_package(tiny, tmp_path):
    model = LLaDAUniForConditionalGeneration(tiny_uni_config())
    model.load_state_dict(tiny.state_dict())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llada_uni"
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_llada_uni.LLaDAUniForConditionalGeneration"
    assert (tmp_path / "modeling_llada_uni.py").exists() and (tmp_path / "configuration_llada_uni.py").exists()
    ids = torch.randint(0, 1088, (1, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids, attention_mask=torch.ones_like(ids)).logits
    save_file({"ids": ids, "logits": logits}, tmp_path / "io.safetensors")
    result = run_without_package(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        io = load_file({str(tmp_path / "io.safetensors")!r})
        with torch.no_grad():
            logits = model(io["ids"], attention_mask=torch.ones_like(io["ids"])).logits
        assert torch.equal(logits, io["logits"]), (logits - io["logits"]).abs().max()
        print("REMOTE-OK")
        """
    )
    assert "REMOTE-OK" in result.stdout


def test_auto_classes_and_released_model_type(tiny):
    assert isinstance(AutoModel.from_pretrained(TINY_RELEASED), LLaDAUniModel)
    # the released folder names remote code that is absent: our registration must win with trust_remote_code=True
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED, trust_remote_code=True)
    assert isinstance(model, LLaDAUniForConditionalGeneration)
    assert isinstance(AutoConfig.for_model("llada_uni"), LLaDAUniConfig)


def test_registration_does_not_clobber_an_existing_model_type():
    result = run_without_package(
        """
        import sys
        sys.meta_path.pop(0)  # allow our package again: this test is about import order
        from transformers import AutoConfig, PretrainedConfig
        class OtherConfig(PretrainedConfig):
            model_type = "llada2_moe"
        AutoConfig.register("llada2_moe", OtherConfig)
        import transformers_llada_uni
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        assert CONFIG_MAPPING["llada2_moe"] is OtherConfig
        assert CONFIG_MAPPING["llada_uni"] is transformers_llada_uni.LLaDAUniConfig
        print("NO-CLOBBER-OK")
        """
    )
    assert "NO-CLOBBER-OK" in result.stdout


def test_prefix_cache_is_exact_under_block_causal_attention(tiny):
    block = 8
    ids = torch.randint(0, 1088, (2, 4 * block), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        full = tiny(ids, attention_mask=mask, block_length=block).logits
        cache = DynamicCache(config=tiny.config)
        tiny(ids[:, : 3 * block], attention_mask=mask[:, : 3 * block], block_length=block, cache=cache, use_cache=True)
        assert cache.get_seq_length() == 3 * block
        last = tiny(ids[:, 3 * block :], attention_mask=mask, block_length=block, cache=cache, use_cache=True).logits
    assert max_rel_err(last, full[:, 3 * block :]) <= 1e-5


def test_logits_to_keep(tiny):
    ids = torch.randint(0, 1088, (1, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = tiny(ids).logits
        last = tiny(ids, logits_to_keep=5).logits
        picked = tiny(ids, logits_to_keep=torch.tensor([0, 7])).logits
    assert last.shape == (1, 5, 1088) and picked.shape == (1, 2, 1088)
    torch.testing.assert_close(last, full[:, -5:])
    torch.testing.assert_close(picked, full[:, [0, 7]])


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_left_padding_gives_no_nan_and_matches_unpadded(attn_implementation):
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED, attn_implementation=attn_implementation)
    block = 8
    ids = torch.randint(0, 700, (1, 2 * block), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([torch.full((1, block), 732), ids], dim=1)
    mask = torch.cat([torch.zeros(1, block, dtype=torch.long), torch.ones_like(ids)], dim=1)
    positions = torch.cat([torch.zeros(1, block, dtype=torch.long), torch.arange(2 * block)[None]], dim=1)
    with torch.no_grad():
        out = model(padded, attention_mask=mask, position_ids=positions, block_length=block).logits
        ref = model(ids, attention_mask=torch.ones_like(ids), block_length=block).logits
    assert torch.isfinite(out).all()
    assert max_rel_err(out[:, block:], ref) <= 1e-5


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    ids = torch.randint(0, 1088, (2, 16))

    def grads(checkpointing):
        model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        logits = model(ids, attention_mask=torch.ones_like(ids), block_length=8).logits
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys() and len(plain) > 20
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_device_map_offload_and_bfloat16(tiny, tmp_path):
    ids = torch.randint(0, 1088, (1, 16), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        reference = tiny(ids).logits
    offloaded = AutoModelForCausalLM.from_pretrained(
        TINY_RELEASED, device_map="auto", max_memory={"cpu": "600KB"}, offload_folder=str(tmp_path)
    )
    assert "disk" in set(offloaded.hf_device_map.values())
    with torch.no_grad():
        torch.testing.assert_close(offloaded(ids).logits, reference)
    bf16 = AutoModelForCausalLM.from_pretrained(TINY_RELEASED, dtype=torch.bfloat16)
    assert bf16.lm_head.weight.dtype == torch.bfloat16
    assert bf16.model.layers[1].mlp.gate.expert_bias.dtype == torch.float32  # selection must not be rounded
    with torch.no_grad():
        logits = bf16(ids).logits
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_works_in_diffusers_llada2_pipeline(tiny):
    from diffusers import BlockRefinementScheduler, LLaDA2Pipeline

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(TINY_RELEASED / "tokenizer.json"),
        mask_token="<|mask|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
    )
    pipe = LLaDA2Pipeline(model=tiny, scheduler=BlockRefinementScheduler(), tokenizer=tokenizer)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt="A short story", gen_length=16, block_length=8, num_inference_steps=4)
    assert out.sequences.ndim == 2 and out.sequences.shape[0] == 1
    assert out.sequences.shape[1] > 0 and int(out.sequences.max()) < tiny.config.vocab_size


def test_bad_inputs_raise_clear_errors(tiny):
    with pytest.raises(ValueError, match="1088"):
        tiny(torch.tensor([[1, 2, 1088]]))
    with pytest.raises(ValueError, match="attention_mask"):
        tiny(torch.tensor([[1, 2, 3]]), attention_mask=torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        tiny(torch.tensor([[1, 2, 3]]), attention_mask=torch.ones(1, 1, 3, 5, dtype=torch.bool))


def test_checkpoint_without_weights_names_what_is_missing(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(TINY_RELEASED, folder)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises((OSError, FileNotFoundError, ValueError), match="model-00002-of-00002"):
        AutoModelForCausalLM.from_pretrained(folder)
    # a single-file checkpoint that lacks tensors: the error names the missing keys
    (folder / "model.safetensors.index.json").unlink()
    (folder / "model-00001-of-00002.safetensors").rename(folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"lacks weights .*model\.layers\.2\."):
        AutoModelForCausalLM.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(folder)


def test_package_version_of_the_registration_is_importable_twice():
    # Importing the package again (e.g. a remote-code copy in the same process) must not raise. In a fresh
    # interpreter: reloading rebinds the module's classes, which would break the class identity later tests rely on.
    result = subprocess.run(
        [sys.executable, "-c", "import importlib, transformers_llada_uni as package; "
         "importlib.reload(package.modeling_llada_uni); print('RELOAD-OK')"],
        capture_output=True, text=True, timeout=300,
    )
    assert "RELOAD-OK" in result.stdout, result.stderr


def test_rope_scaling_is_honoured_after_init_and_from_pretrained(tmp_path):
    # head_dim 16 with partial_rotary_factor 0.5: 8 rotary dims, 4 frequencies theta^(-2i/8)
    default = 1.0 / 1e4 ** (torch.arange(0, 8, 2, dtype=torch.float) / 8)
    linear = LLaDAUniForConditionalGeneration(tiny_uni_config(
        rope_parameters={"rope_type": "linear", "factor": 10.0, "rope_theta": 1e4, "partial_rotary_factor": 0.5}
    ))
    torch.testing.assert_close(linear.model.rotary_emb.inv_freq, default / 10)

    yarn_config = tiny_uni_config(rope_parameters={
        "rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4, "partial_rotary_factor": 0.5,
        "original_max_position_embeddings": 64,
    })
    LLaDAUniForConditionalGeneration(yarn_config).save_pretrained(tmp_path)
    yarn = AutoModelForCausalLM.from_pretrained(tmp_path)
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    expected, scaling = ROPE_INIT_FUNCTIONS["yarn"](yarn_config)
    assert not torch.allclose(expected, default)  # yarn really changes the low frequencies
    torch.testing.assert_close(yarn.model.rotary_emb.inv_freq, expected)
    torch.testing.assert_close(yarn.model.rotary_emb.original_inv_freq, expected)
    assert yarn.model.rotary_emb.attention_scaling == scaling > 1.0

    # the released RoPE (theta 600000 on half of each head) is untouched
    released = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    torch.testing.assert_close(
        released.model.rotary_emb.inv_freq, 1.0 / 600000.0 ** (torch.arange(0, 8, 2, dtype=torch.float) / 8)
    )


def test_labels_give_the_masked_lm_loss(tiny):
    # Trainer-style batch: the noised ids go in, the clean tokens are the labels where the input was masked.
    mask_id = 735
    clean = torch.randint(0, 700, (2, 12), generator=torch.Generator().manual_seed(6))
    noised = clean.clone()
    noised[0, [3, 7]] = mask_id
    noised[1, [0, 5, 11]] = mask_id
    labels = torch.where(noised == mask_id, clean, -100)
    with torch.no_grad():
        out = tiny(noised, attention_mask=torch.ones_like(noised), block_length=8, labels=labels)
    # by hand: position i predicts token i (no shift), mean over the 5 labelled positions
    log_probs = out.logits.log_softmax(-1)
    picked = [log_probs[b, i, clean[b, i]] for b, i in [(0, 3), (0, 7), (1, 0), (1, 5), (1, 11)]]
    torch.testing.assert_close(out.loss, -torch.stack(picked).mean())
    # Trainer passes the number of labelled tokens of the whole batch
    with torch.no_grad():
        summed = tiny(noised, attention_mask=torch.ones_like(noised), block_length=8, labels=labels,
                      num_items_in_batch=torch.tensor(10)).loss
    torch.testing.assert_close(summed, -torch.stack(picked).sum() / 10)
    with pytest.raises(ValueError, match="labels"):
        tiny(noised, labels=labels[:, :5])


def test_trainer_trains_with_labels_from_a_plain_collator(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    rows = []
    for seed in range(8):
        clean = torch.randint(0, 700, (16,), generator=torch.Generator().manual_seed(seed))
        noised = clean.clone()
        noised[8:][torch.rand(8, generator=torch.Generator().manual_seed(100 + seed)) < 0.5] = 735
        noised[15] = 735  # at least one masked position per row
        rows.append({"input_ids": noised.tolist(), "labels": torch.where(noised == 735, clean, -100).tolist()})
    trainer = Trainer(  # no data collator: transformers' default one stacks the rows
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4,
                               learning_rate=5e-3, report_to=[], logging_steps=1, save_strategy="no"),
        train_dataset=rows,
    )
    history = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses
    assert history.training_loss > 0


def test_config_with_a_small_vocabulary_needs_no_special_ids():
    config = LLaDAUniConfig(vocab_size=1088, image_token_offset=1024)
    assert config.image_codebook_size == 64
    assert config.pad_token_id is None and config.mask_token_id is None and config.eos_token_id is None
    # the released vocabulary keeps the released ids; given ids are kept and checked
    assert (LLaDAUniConfig().pad_token_id, LLaDAUniConfig().mask_token_id) == (156892, 156895)
    assert LLaDAUniConfig(vocab_size=1088, image_token_offset=1024, pad_token_id=732).eos_token_id == 732
    with pytest.raises(ValueError, match="pad_token_id"):
        LLaDAUniConfig(vocab_size=1088, image_token_offset=1024, pad_token_id=156892)
    with pytest.raises(ValueError, match="image_token_offset"):
        LLaDAUniConfig(vocab_size=1088)


def test_config_json_without_size_fields_fails_fast(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(TINY_RELEASED, folder)
    config = json.loads((folder / "config.json").read_text())
    for key in ("hidden_size", "num_hidden_layers", "num_experts"):
        del config[key]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden_size, num_hidden_layers, num_experts"):
        AutoModelForCausalLM.from_pretrained(folder)
    with pytest.raises(ValueError, match="hidden_size"):
        LLaDA2MoeConfig.from_pretrained(folder)


def test_empty_input_ids_raise_a_clear_error(tiny):
    for shape in ((1, 0), (0, 4)):
        with pytest.raises(ValueError, match="empty"):
            tiny(torch.zeros(shape, dtype=torch.long))
    with pytest.raises(ValueError, match="inputs_embeds"):
        tiny(inputs_embeds=torch.zeros(1, 0, tiny.config.hidden_size))
