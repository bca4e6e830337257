"""LoRA on the tiny checkpoint overfits one set that mixes text, text-to-image and editing, through transformers'
Trainer and through `llada-uni train`: the loss falls by at least 80%, and greedy generation, text-to-image and editing
then reproduce the training answer and image codes."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, set_seed

import transformers_llada_uni  # noqa: F401
from transformers_llada_uni import (
    DataCollatorForMaskedDiffusion,
    LLaDAUniMaskedDiffusionTrainer,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionConfig,
    encode_training_dataset,
    get_llada_uni_peft_model,
)
from transformers_llada_uni.prompting_llada_uni import build_text_to_image_prompt, valid_image_grid_sizes
from transformers_llada_uni.training_peft_llada_uni import DEFAULT_LORA_TARGET_MODULES

from llada_uni_cli.train import build_parser, train


BLOCK = 8
# Greedy decoding starts every block fully masked, a state the default noise range (0.3..0.8) rarely shows; to
# memorise a handful of examples quickly, train up to t = 1.
NOISE = (0.3, 1.0)
STEPS, LR = 300, 2e-2
# The tiny model's random LM head gives O(10) logits; adapting it too makes memorising fast.
TARGETS = DEFAULT_LORA_TARGET_MODULES + r"|lm_head"
CLI_TARGETS = ["query_key_value", "dense", "gate_proj", "up_proj", "down_proj", "lm_head"]


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def records(tiny_released_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_released_dir)
    side = min(valid_image_grid_sizes(tokenizer))
    config = AutoModelForCausalLM.from_pretrained(tiny_released_dir).config
    generator = torch.Generator().manual_seed(7)

    def codes():
        return torch.randint(0, config.vocab_size - config.image_token_offset, (side, side), generator=generator).tolist()

    return [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                      {"role": "assistant", "content": "Paris."}]},
        {"prompt": "a red fox in the snow", "image_codes": codes()},
        {"instruction": "make it snow", "source_codes": codes(), "edited_codes": codes()},
    ]


def assert_reproduces(model, tokenizer, records):
    """Greedy text generation, text-to-image and editing give back the training targets."""
    model.eval()
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    text = encoder.encode(records[0])
    target = text.response_ids + [encoder.special.eos_token_id]
    prompt = torch.tensor([text.prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=prompt, tokenizer=tokenizer, gen_length=len(target) + BLOCK, steps=BLOCK,
                             block_length=BLOCK, temperature=0.0)
    assert out[0, prompt.shape[1] :].tolist()[: len(target)] == target, tokenizer.decode(out[0, prompt.shape[1] :])

    t2i = records[1]
    side = len(t2i["image_codes"])
    assert encoder.encode(t2i).prompt_ids == build_text_to_image_prompt(tokenizer, t2i["prompt"], side, side)
    with torch.no_grad():
        image = model.generate_image(t2i["prompt"], tokenizer=tokenizer, image_h=side * 32, image_w=side * 32,
                                     steps=BLOCK, block_length=BLOCK, cfg_scale=1.0, temperature=0.0)
    assert (image.h, image.w) == (side, side)
    assert image.token_ids.flatten().tolist() == [c for row in t2i["image_codes"] for c in row]

    edit = records[2]
    offset = encoder.special.image_token_offset
    with torch.no_grad():
        edited = model.edit_image([c + offset for row in edit["source_codes"] for c in row], side, side,
                                  edit["instruction"], tokenizer=tokenizer, steps=BLOCK, block_length=BLOCK,
                                  cfg_text_scale=0.0, cfg_image_scale=0.0, temperature=0.0)
    assert edited.token_ids.flatten().tolist() == [c for row in edit["edited_codes"] for c in row]


def assert_loss_fell(losses):
    assert len(losses) == STEPS
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last <= 0.2 * first, (first, last)


def test_lora_overfits_text_text_to_image_and_editing_through_the_trainer(tiny_released_dir, records, tmp_path):
    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_released_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    collator = DataCollatorForMaskedDiffusion(encoder.special, MaskedDiffusionConfig(block_length=BLOCK, noise_range=NOISE),
                                              model_config=model.config)
    peft_model = get_llada_uni_peft_model(model, r=16, lora_alpha=32, target_modules=TARGETS)
    args = TrainingArguments(str(tmp_path / "run"), max_steps=STEPS, per_device_train_batch_size=len(records),
                             learning_rate=LR, lr_scheduler_type="linear", logging_steps=1, save_strategy="no",
                             report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
    trainer = LLaDAUniMaskedDiffusionTrainer(model=peft_model, args=args, data_collator=collator,
                                             train_dataset=encode_training_dataset(records, encoder))
    trainer.train()
    assert_loss_fell([entry["loss"] for entry in trainer.state.log_history if "loss" in entry])
    assert_reproduces(peft_model, tokenizer, records)


def test_lora_overfits_text_text_to_image_and_editing_through_the_command_line(tiny_released_dir, records, tmp_path):
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "run"
    train(build_parser().parse_args([
        "--model", str(tiny_released_dir), "--data", str(data), "--output-dir", str(out), "--device", "cpu",
        "--max-steps", str(STEPS), "--batch-size", str(len(records)), "--learning-rate", str(LR),
        "--lr-scheduler", "linear", "--block-length", str(BLOCK), "--noise-range", ",".join(map(str, NOISE)),
        "--target-modules", *CLI_TARGETS, "--save-steps", str(STEPS), "--no-progress",
    ]))
    assert_loss_fell([json.loads(line)["loss"] for line in (out / "loss.jsonl").read_text().splitlines()])
    # What a user does with the result: the base model plus the saved adapter.
    base = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    model = PeftModel.from_pretrained(base, str(out / "adapter"))
    assert_reproduces(model, AutoTokenizer.from_pretrained(out / "adapter"), records)
