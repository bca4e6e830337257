"""transformers.Trainer with the masked-diffusion objective: trains, evaluates, saves a loadable adapter."""

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

import transformers_llada_uni
from transformers_llada_uni import (
    DataCollatorForMaskedDiffusion,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionConfig,
    MaskedDiffusionDataset,
    get_llada_uni_peft_model,
    masked_diffusion_loss,
)
from transformers_llada_uni.training_llada_uni import DEFAULT_LORA_TARGET_MODULES

from conftest import TINY_RELEASED


pytestmark = pytest.mark.usefixtures("single_thread")

RECORDS = [
    {"prompt": "What colour is the sky?", "response": "Blue on a clear day."},
    {"prompt": "Name a prime number.", "response": "Seven is prime."},
    {"prompt": "Capital of France?", "response": "Paris."},
    {"prompt": "Say hello.", "response": "Hello, world!"},
]


def _parts(seed=0):
    tokenizer = AutoTokenizer.from_pretrained(TINY_RELEASED)
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    dataset = MaskedDiffusionDataset(RECORDS, encoder)
    objective = MaskedDiffusionConfig(block_length=8, noise_range=(0.3, 1.0))
    collator = DataCollatorForMaskedDiffusion(encoder.special, objective, model_config=model.config, seed=seed)
    return model, dataset, collator, objective


def test_trainer_trains_evaluates_and_saves_an_adapter(tmp_path):
    # Imported the way users do: the package loads the Trainer stack on first use only.
    trainer_class = transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer
    model, dataset, collator, objective = _parts()
    model = get_llada_uni_peft_model(model, r=8, target_modules=DEFAULT_LORA_TARGET_MODULES + r"|lm_head")
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=30, per_device_train_batch_size=4, per_device_eval_batch_size=4,
        learning_rate=1e-2, lr_scheduler_type="linear", logging_steps=1, save_steps=30, report_to=[], seed=0,
        disable_tqdm=True,
    )
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, eval_dataset=dataset, data_collator=collator)
    assert trainer.objective.block_length == 8 and trainer.objective.noise_range == (0.3, 1.0)

    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 30 and all(loss == loss for loss in losses)
    assert after < 0.5 * before, (before, after)

    # The trainer's loss is the library's: one batch through both.
    batch = DataCollatorForMaskedDiffusion(collator.special, objective, seed=7)([dataset[i] for i in range(4)])
    model.eval()
    with torch.no_grad():
        expected = masked_diffusion_loss(model, batch, objective).loss
        assert torch.allclose(trainer.compute_loss(model, batch), expected)

    checkpoint = tmp_path / "run" / "checkpoint-30"
    assert (checkpoint / "adapter_model.safetensors").is_file()
    trainer.save_model(str(tmp_path / "adapter"))
    base = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    ids = batch["input_ids"][:1]
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)


def test_trainer_needs_the_masked_diffusion_collator(tmp_path):
    model, dataset, _, _ = _parts()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, report_to=[])
    with pytest.raises(TypeError, match="DataCollatorForMaskedDiffusion"):
        transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer(
            model=model, args=args, train_dataset=dataset, data_collator=lambda features: features
        )
