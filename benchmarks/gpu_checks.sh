#!/usr/bin/env bash
# The accelerator checks of the backbone and decoder issues in one run (estimated at 5 minutes on one H100):
#   1. parity with the recordings in float32 and bfloat16 (check_parity.py),
#   2. bench_moe at the issue's mid-size config in bfloat16, and one released-size MoE layer stack,
#   3. bench_decoder (resident pipeline against per-call loading; turbo against normal), tiny and mid-size,
#   4. bench_generate in bfloat16 (the generation issue's figures on a GPU).
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
exit $status
