# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""LoRA / QLoRA fine-tuning of LLaDA2.0-Uni with the masked-diffusion objective, launched by accelerate.

    accelerate launch examples/train_lora.py --model MODEL_DIR --data train.jsonl --output-dir out \\
        --max-steps 1000 --learning-rate 1e-4 --batch-size 4 --save-steps 200
    accelerate launch examples/train_lora.py ... --resume            # continue from the newest checkpoint
    accelerate launch examples/train_lora.py ... --load-in-4bit      # QLoRA (routed experts in 4 bits too)

It is the `llada-uni train` command (same options; `--help` lists them and documents the JSONL format). Several GPUs
run data parallel (`accelerate launch --multi_gpu --num_processes N`; FSDP and DeepSpeed are refused). The loop itself
is short; read `llada_uni_cli/train.py` to adapt it:

    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)            # records -> prompt/target ids
    collator = DataCollatorForMaskedDiffusion(encoder.special, MaskedDiffusionConfig(), model_config=model.config)
    model = get_llada_uni_peft_model(model, r=16)                            # default LoRA targets, router frozen
    loss = masked_diffusion_loss(model, collator(batch_of_examples)).loss     # doubled [x_t | x_0], BD3-LM mask
"""

import sys

from llada_uni_cli.train import main


if __name__ == "__main__":
    sys.exit(main())
