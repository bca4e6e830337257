"""Several processes on the CPU (gloo), launched with torchrun as `accelerate launch` would: for one global batch and
seed, one process, data parallel, FSDP2 (LoRA with routed experts, and full fine-tuning) and DeepSpeed ZeRO-2 / ZeRO-3
give the same losses; their checkpoints load into one process and resume there (FSDP, DDP), or refuse to (DeepSpeed, or
another global batch)."""

import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from llada_uni_cli.train import build_parser, train


REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "examples" / "accelerate"
RECORDS = [
    {"prompt": "What colour is the sky?", "response": "Blue on a clear day."},
    {"prompt": "Name a prime number.", "response": "Seven is prime."},
    {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]},
    {"prompt": "Say hello.", "response": "Hello, world!"},
]
FSDP = ["--training-arg", "fsdp=true", "--training-arg", f"fsdp_config={CONFIGS / 'fsdp2.json'}"]
# Within float tolerance: the processes sum gradients in another order than one process does.
TOLERANCE = dict(rel=1e-4, abs=1e-4)
# Trained weights: Adam divides by the root of the squared gradients, so where a gradient is near zero it turns
# rounding differences into update differences of up to a few percent of one step (the learning rate, 1e-2).
WEIGHT_TOLERANCE = dict(atol=2e-3, rtol=0)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def command(model_dir, data, out, batch_size, *extra):
    # Every row padded to one length: text targets include their EOS padding, so the batch layout must not change it.
    return [
        "--model", str(model_dir), "--data", str(data), "--output-dir", str(out), "--batch-size", str(batch_size),
        "--max-steps", "3", "--save-steps", "1", "--learning-rate", "1e-2", "--lr-scheduler", "linear",
        "--block-length", "8", "--pad-to-multiple-of", "64", "--no-progress", "--seed", "0", "--device", "cpu", *extra,
    ]


def launch(*runs, processes=2):
    """torchrun with `processes` CPU processes, the given `train` command lines one after another."""
    argv = []
    for run in runs:
        argv += (["--next--"] if argv else []) + run
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    process = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
         str(REPO / "tests" / "distributed_train_runs.py"), *argv],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        # A session of its own: a hang kills the workers too, not only the launcher.
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-4000:]
    return stdout


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "loss.jsonl").read_text().splitlines()]


def info(checkpoint):
    return json.loads((checkpoint / "llada_uni_checkpoint.json").read_text())


@pytest.fixture(scope="module")
def one_process(tiny_released_dir, data, tmp_path_factory):
    """Reference runs in this process, with the global batch (2) of the two-process runs."""
    root = tmp_path_factory.mktemp("one-process")
    runs = {"lora": [], "experts": ["--train-routed-experts"], "full": ["--full-finetuning"]}
    for name, extra in runs.items():
        train(build_parser().parse_args(command(tiny_released_dir, data, root / name, 2, *extra)))
    return {name: root / name for name in runs}


@pytest.fixture(scope="module")
def torch_runs(tiny_released_dir, data, tmp_path_factory):
    """The data-parallel and FSDP2 runs, in one launch: starting the processes costs more than the runs themselves."""
    root = tmp_path_factory.mktemp("two-processes")
    runs = {
        "ddp": [],
        "fsdp-lora": ["--train-routed-experts", *FSDP],
        "fsdp-full": ["--full-finetuning", *FSDP],
    }
    stdout = launch(*(command(tiny_released_dir, data, root / name, 1, *extra) for name, extra in runs.items()))
    return stdout, {name: root / name for name in runs}


def test_data_parallel_matches_one_process_and_resumes_in_one(tiny_released_dir, data, one_process, torch_runs, tmp_path):
    stdout, outs = torch_runs
    out = outs["ddp"]
    # The main process reports each run, the other one does not.
    assert stdout.count("Trained 3 steps") == len(outs)
    assert losses(out) == pytest.approx(losses(one_process["lora"]), **TOLERANCE)
    checkpoint = out / "checkpoint-2"
    assert info(checkpoint)["world_size"] == 2 and info(checkpoint)["engine"] == "ddp"
    assert {"rng_state_0.safetensors", "rng_state_1.safetensors"} <= {p.name for p in checkpoint.iterdir()}

    # One process resumes the two-process run (same global batch: 1 x 2 x 1 = 2 x 1 x 1) ...
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    shutil.rmtree(resumed / "checkpoint-3")
    train(build_parser().parse_args(command(tiny_released_dir, data, resumed, 2, "--resume", str(resumed / "checkpoint-2"))))
    assert losses(resumed) == pytest.approx(losses(out), **TOLERANCE)
    # ... but not with another global batch: the data position of a step would move.
    with pytest.raises(ValueError, match=r"global batch of 2 \(2 process\(es\) x 1 x 1 accumulation step\(s\)\); this "
                                         r"run's is 1 \(1 x 1 x 1\)"):
        train(build_parser().parse_args(command(tiny_released_dir, data, out, 1, "--resume", str(checkpoint))))


def test_fsdp2_lora_and_full_finetuning_match_one_process_and_load_in_one(
    tiny_released_dir, data, one_process, torch_runs, tmp_path
):
    lora, full = torch_runs[1]["fsdp-lora"], torch_runs[1]["fsdp-full"]
    assert losses(lora) == pytest.approx(losses(one_process["experts"]), **TOLERANCE)
    assert losses(full) == pytest.approx(losses(one_process["full"]), **TOLERANCE)
    assert info(lora / "checkpoint-3")["engine"] == "fsdp"

    # The checkpoints hold full tensors: one process loads them.
    adapter = load_file(str(lora / "checkpoint-3" / "adapter_model.safetensors"))
    assert any(".experts." in key for key in adapter)
    reference = load_file(str(one_process["experts"] / "adapter" / "adapter_model.safetensors"))
    assert adapter.keys() == reference.keys()
    assert all(torch.allclose(adapter[k], reference[k], **WEIGHT_TOLERANCE) for k in adapter)
    base = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    peft_model = PeftModel.from_pretrained(base, str(lora / "checkpoint-3"))
    ids = torch.arange(20)[None] + 50
    model = AutoModelForCausalLM.from_pretrained(full / "checkpoint-3")
    final = AutoModelForCausalLM.from_pretrained(full / "model")
    assert all(torch.equal(p, final.get_parameter(name)) for name, p in model.named_parameters())
    with torch.no_grad():
        assert torch.isfinite(peft_model(ids).logits).all()
    assert not [p for p in full.rglob("_fsdp*.py")]  # no torch sources copied as the model's remote code

    # One process resumes the FSDP run of full fine-tuning.
    resumed = tmp_path / "resumed"
    shutil.copytree(full, resumed)
    shutil.rmtree(resumed / "checkpoint-3")
    shutil.rmtree(resumed / "model")
    train(build_parser().parse_args(command(tiny_released_dir, data, resumed, 2, "--full-finetuning", "--resume")))
    assert losses(resumed) == pytest.approx(losses(full), **TOLERANCE)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="DeepSpeed is the optional `deepspeed` extra (pip install -e .[deepspeed])")
def test_deepspeed_zero_2_and_3_match_one_process(tiny_released_dir, data, one_process, tmp_path):
    stages = (2, 3)
    outs = {stage: tmp_path / f"zero{stage}" for stage in stages}
    # Both stages in one launch (one start of the processes), one after the other.
    launch(*(
        command(tiny_released_dir, data, outs[stage], 1, "--training-arg",
                f"deepspeed={CONFIGS / f'deepspeed_zero{stage}.json'}")
        for stage in stages
    ))
    reference = load_file(str(one_process["lora"] / "adapter" / "adapter_model.safetensors"))
    for stage, out in outs.items():
        assert losses(out) == pytest.approx(losses(one_process["lora"]), **TOLERANCE), stage
        assert info(out / "checkpoint-2")["engine"] == "deepspeed"
        final = load_file(str(out / "adapter" / "adapter_model.safetensors"))
        assert final.keys() == reference.keys()
        assert all(torch.allclose(final[k], reference[k], **WEIGHT_TOLERANCE) for k in final), stage
        with pytest.raises(ValueError, match=r"was written by deepspeed with 2 process\(es\); this run uses single with 1"):
            train(build_parser().parse_args(command(tiny_released_dir, data, out, 2, "--resume")))
