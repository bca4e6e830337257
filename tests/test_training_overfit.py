"""LoRA on the tiny checkpoint overfits a 4-example text set and a 2-example text-to-image set: the loss falls by at
least 80% and greedy generation then reproduces the training answers and image codes."""

import pytest
import torch

import transformers_llada_uni  # noqa: F401
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers_llada_uni.prompting_llada_uni import build_text_to_image_prompt, valid_image_grid_sizes
from transformers_llada_uni.training_llada_uni import (
    DEFAULT_LORA_TARGET_MODULES,
    DataCollatorForMaskedDiffusion,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionConfig,
    get_llada_uni_peft_model,
    masked_diffusion_loss,
)


BLOCK = 8
# Greedy decoding starts every block fully masked, a state the default noise range (0.3..0.8) rarely shows; to
# memorise a handful of examples quickly, train up to t = 1.
NOISE = (0.3, 1.0)
# The tiny model's random LM head gives O(10) logits; adapting it too makes memorising fast.
TARGETS = DEFAULT_LORA_TARGET_MODULES + r"|lm_head"


pytestmark = pytest.mark.usefixtures("single_thread")

TEXT_RECORDS = [
    {"prompt": "What colour is the sky?", "response": "Blue on a clear day."},
    {"prompt": "Name a prime number.", "response": "Seven is prime."},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                  {"role": "assistant", "content": "Paris."}]},
    {"prompt": "Say hello.", "response": "Hello, world!"},
]


def overfit(model, examples, special, steps, lr, seed=0, noise_range=NOISE):
    """Trains LoRA adapters with the library's collator and loss; returns (loss before, loss after, curve)."""
    config = MaskedDiffusionConfig(block_length=BLOCK, noise_range=noise_range)
    eval_collator = DataCollatorForMaskedDiffusion(special, config, seed=1000 + seed)
    eval_batches = [eval_collator(examples) for _ in range(4)]

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return sum(masked_diffusion_loss(model, b, config).loss.item() for b in eval_batches) / len(eval_batches)

    collator = DataCollatorForMaskedDiffusion(special, config, seed=seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    # decaying to zero lets the last steps settle instead of bouncing at a high learning rate
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    before = eval_loss()
    curve = []
    for _ in range(steps):
        model.train()
        loss = masked_diffusion_loss(model, collator(examples), config).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        curve.append(loss.item())
    return before, eval_loss(), curve


def test_lora_overfits_text_and_generation_reproduces_answers(tiny_released_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_released_dir)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    examples = [encoder.encode(r) for r in TEXT_RECORDS]
    peft_model = get_llada_uni_peft_model(model, r=16, lora_alpha=32, target_modules=TARGETS)

    before, after, curve = overfit(peft_model, examples, encoder.special, steps=250, lr=2e-2)
    print(f"text overfit: eval loss {before:.4f} -> {after:.4f}; curve {[round(x, 3) for x in curve[::25]]}")
    assert after <= 0.2 * before

    peft_model.eval()
    eos = encoder.special.eos_token_id
    for example in examples:
        prompt = torch.tensor([example.prompt_ids])
        target = example.response_ids + [eos]
        with torch.no_grad():
            out = peft_model.generate(
                input_ids=prompt, tokenizer=tokenizer, gen_length=len(target) + BLOCK, steps=BLOCK,
                block_length=BLOCK, temperature=0.0,
            )
        generated = out[0, prompt.shape[1] :].tolist()
        assert generated[: len(target)] == target, tokenizer.decode(generated)

    # merged into the base weights, generation gives the same answers
    merged = peft_model.merge_and_unload()
    example = examples[0]
    with torch.no_grad():
        out = merged.generate(
            input_ids=torch.tensor([example.prompt_ids]), tokenizer=tokenizer,
            gen_length=len(example.response_ids) + 1 + BLOCK, steps=BLOCK, block_length=BLOCK, temperature=0.0,
        )
    target = example.response_ids + [eos]
    assert out[0, len(example.prompt_ids) :].tolist()[: len(target)] == target


def test_lora_overfits_text_to_image_and_generate_image_reproduces_codes(tiny_released_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_released_dir)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    side = min(valid_image_grid_sizes(tokenizer))
    generator = torch.Generator().manual_seed(7)
    codebook = encoder.special.image_codebook_size
    records = [
        {"prompt": "a red fox in the snow", "image_codes": torch.randint(0, codebook, (side, side), generator=generator).tolist()},
        {"prompt": "a lighthouse at dusk", "image_codes": torch.randint(0, codebook, (side, side), generator=generator).tolist()},
    ]
    examples = [encoder.encode(r) for r in records]
    assert examples[0].prompt_ids == build_text_to_image_prompt(tokenizer, records[0]["prompt"], side, side)
    peft_model = get_llada_uni_peft_model(model, r=16, lora_alpha=32, target_modules=TARGETS)

    before, after, curve = overfit(peft_model, examples, encoder.special, steps=400, lr=2e-2)
    print(f"t2i overfit: eval loss {before:.4f} -> {after:.4f}; curve {[round(x, 3) for x in curve[::25]]}")
    assert after <= 0.2 * before

    peft_model.eval()
    for record in records:
        with torch.no_grad():
            result = peft_model.generate_image(
                record["prompt"], tokenizer=tokenizer, image_h=side * 32, image_w=side * 32, steps=BLOCK,
                block_length=BLOCK, cfg_scale=1.0, temperature=0.0,
            )
        assert (result.h, result.w) == (side, side)
        assert result.token_ids.tolist() == [c for row in record["image_codes"] for c in row]
