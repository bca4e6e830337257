# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""LoRA fine-tuning of LLaDA2.0-Uni with transformers' Trainer, written out: what `llada-uni train` does.

    python examples/train_with_trainer.py MODEL_DIR train.jsonl out/
    accelerate launch --config_file examples/accelerate/ddp.yaml examples/train_with_trainer.py MODEL_DIR train.jsonl out/

The records may mix text, text-to-image and editing rows (see `llada-uni train --help`); rows with pictures need the
image tokenizer (MODEL_DIR/image_tokenizer).
"""

import sys
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoProcessor, TrainingArguments, set_seed

from transformers_llada_uni import (
    DataCollatorForMaskedDiffusion,
    LLaDAUniImageVQModel,
    LLaDAUniMaskedDiffusionTrainer,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionConfig,
    encode_training_dataset,
    get_llada_uni_peft_model,
    load_training_dataset,
)


def main(model_dir: str, data: str, output_dir: str) -> None:
    set_seed(0)  # the adapter's initialisation, the data order and the masking noise
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    image_tokenizer = None
    if (Path(model_dir) / "image_tokenizer").is_dir():
        image_tokenizer = LLaDAUniImageVQModel.from_pretrained(Path(model_dir) / "image_tokenizer").eval()

    encoder = LLaDAUniTrainingDataEncoder(processor.tokenizer, model.config, image_tokenizer=image_tokenizer,
                                          processor=processor, base_dir=Path(data).parent)
    train_dataset = encode_training_dataset(load_training_dataset(data), encoder, source=data)
    collator = DataCollatorForMaskedDiffusion(encoder.special, MaskedDiffusionConfig(), model_config=model.config)

    args = TrainingArguments(
        output_dir, max_steps=1000, per_device_train_batch_size=4, learning_rate=1e-4, lr_scheduler_type="cosine",
        warmup_steps=50, logging_steps=10, save_steps=200, save_total_limit=3, bf16=True, report_to="tensorboard",
    )
    trainer = LLaDAUniMaskedDiffusionTrainer(
        model=get_llada_uni_peft_model(model, r=16), args=args, train_dataset=train_dataset, data_collator=collator
    )
    trainer.train()  # resume_from_checkpoint=True continues the newest checkpoint
    trainer.save_model(f"{output_dir}/adapter")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
