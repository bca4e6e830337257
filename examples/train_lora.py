# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Fine-tuning LLaDA2.0-Uni with the masked-diffusion objective: the `llada-uni train` command as a script, for
launchers that take a script path.

    python examples/train_lora.py --model MODEL_DIR --data train.jsonl --output-dir out --max-steps 1000
    accelerate launch --config_file examples/accelerate/fsdp2.yaml examples/train_lora.py --model ... --full-finetuning
    torchrun --nproc_per_node 8 examples/train_lora.py --model ... --training-arg deepspeed=examples/accelerate/deepspeed_zero3.json

Same options as `llada-uni train` (`--help` lists them and documents the data formats); `examples/train_with_trainer.py`
shows the same run written with transformers' Trainer.
"""

import sys

from llada_uni_cli.train import main


if __name__ == "__main__":
    sys.exit(main())
