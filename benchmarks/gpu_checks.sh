#!/usr/bin/env bash
# The accelerator checks of the backbone and decoder issues in one run (estimated at 5 minutes on one H100):
#   1. parity with the recordings in float32 and bfloat16 (check_parity.py),
#   2. bench_moe at the issue's mid-size config in bfloat16, and one released-size MoE layer stack,
#   3. bench_decoder (resident pipeline against per-call loading; turbo against normal), tiny and mid-size,
#   4. bench_generate in bfloat16 (the generation issue's figures on a GPU),
#   5. training (appended below): bench_train on one GPU and a short run through each accelerate config.
#
# The package runs from src/ (no install). A machine without the pinned libraries gets them as wheels; on this
# machine, from the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl transformers==5.24.0 diffusers==0.42.1 importlib_metadata lazy-importer
# (an image that already has PyTorch, accelerate, peft, tokenizers 0.23 and huggingface_hub 1.3x needs no more),
# and there, the wheels carried along (`carry: [".whl"]`):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#   bash benchmarks/gpu_checks.sh            # logs land in $OUT (default /tmp/gpu-checks)
#
# DEVICE=cpu QUICK=1 runs the same steps at smoke-test sizes, to check the script itself without an accelerator.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
status=0

step() {  # step NAME COMMAND...: runs, logs to $OUT/NAME.txt, remembers a failure, goes on with the next step
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.txt" || status=1
}

python3 -c "import torch, transformers, diffusers; print('torch', torch.__version__, '| transformers', \
transformers.__version__, '| diffusers', diffusers.__version__, '|', torch.cuda.get_device_name() \
if torch.cuda.is_available() else 'no GPU')" | tee "$OUT/versions.txt" || exit 1

if [[ -n "${QUICK:-}" ]]; then
    step parity python3 benchmarks/check_parity.py --device "$DEVICE" --dtypes float32
    step moe python3 benchmarks/bench_moe.py --device "$DEVICE" --tokens 128 --layers 2 --repeats 2
    step decoder python3 benchmarks/bench_decoder.py --device "$DEVICE" --setups tiny --repeats 1 --normal-steps 4
    step generate python3 benchmarks/bench_generate.py --device "$DEVICE" --small --only text --skip-diffusers
else
    step parity python3 benchmarks/check_parity.py --device "$DEVICE"
    step moe python3 benchmarks/bench_moe.py --device "$DEVICE" --dtype bfloat16 --repeats 10
    step moe_fp32 python3 benchmarks/bench_moe.py --device "$DEVICE" --dtype float32 --repeats 10
    # The released layer shape (hidden 2048, 256 experts, expert size 512): 3 MoE layers, 2048 tokens.
    step moe_released python3 benchmarks/bench_moe.py --device "$DEVICE" --dtype bfloat16 --hidden 2048 \
        --experts 256 --tokens 2048 --layers 4 --repeats 10 --expert-size 512
    step decoder python3 benchmarks/bench_decoder.py --device "$DEVICE" --repeats 5
    # Last, being the longest: generation against the original way (no cache, a forward per guidance branch).
    step generate python3 benchmarks/bench_generate.py --device "$DEVICE" --dtype bfloat16 --repeats 2
fi

# ---- Training (issue 12; appended by the training work) --------------------------------------------------------------
# Estimated at 5 minutes on one H100/H200. Beyond the wheels above it needs `datasets` (with dill, multiprocess,
# xxhash) and bitsandbytes; DeepSpeed (an sdist only) where the image has it, else its two runs say so and fail.
#   1. bench_train on the GPU in bf16, one process: LoRA, QLoRA (bitsandbytes' CUDA 4-bit kernels), full fine-tuning;
#   2. a two-step run of the tiny checkpoint through each accelerate config of examples/accelerate/ (one process):
#      data parallel, FSDP2 (full fine-tuning), DeepSpeed ZeRO-2 and ZeRO-3 (LoRA).
python3 - "$OUT/train.jsonl" <<'PY' || status=1
import json, sys
rows = [{"prompt": "What colour is the sky?", "response": "Blue on a clear day."},
        {"prompt": "Say hello.", "response": "Hello, world!"}]
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
train_run() {  # train_run CONFIG EXTRA...: two steps of the tiny checkpoint under an accelerate config
    local config=$1
    shift
    rm -rf "$OUT/train-$config"
    step "train_$config" accelerate launch --config_file "examples/accelerate/$config.yaml" --num_processes 1 \
        -m llada_uni_cli.main train --model tests/fixtures/tiny-llada2-uni --data "$OUT/train.jsonl" \
        --output-dir "$OUT/train-$config" --max-steps 2 --save-steps 1 --batch-size 2 --block-length 8 --no-progress "$@"
}
if [[ -n "${QUICK:-}" ]]; then
    step train_bench python3 benchmarks/bench_train.py --device "$DEVICE" --processes 1 --hidden 64 --layers 2 \
        --experts 8 --groups 2 --top-groups 1 --experts-per-token 2 --vocab 4096 --codebook 1024 --heads 4 \
        --dense-intermediate 128 --expert-intermediate 32 --steps 2 --warmup 1 --prompt-length 16 --target-length 32
else
    step train_bench python3 benchmarks/bench_train.py --device "$DEVICE" --dtype bfloat16 --processes 1 --batch 8 \
        --steps 10
    train_run ddp
    train_run fsdp2 --full-finetuning
    train_run deepspeed_zero2
    train_run deepspeed_zero3
fi
exit $status
