"""The training entry point: `llada-uni train` / `examples/train_lora.py` under accelerate, checkpoints, resume."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from llada_uni_cli.train import build_parser, list_checkpoints, train


REPO = pathlib.Path(__file__).resolve().parents[1]
RECORDS = [
    {"prompt": "What colour is the sky?", "response": "Blue on a clear day."},
    {"prompt": "Name a prime number.", "response": "Seven is prime."},
    {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]},
    {"prompt": "Say hello.", "response": "Hello, world!"},
]


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def args_for(model_dir, data, out, *extra):
    return build_parser().parse_args([
        "--model", str(model_dir), "--data", str(data), "--output-dir", str(out), "--batch-size", "2",
        "--learning-rate", "1e-2", "--block-length", "8", "--no-progress-bar", "--seed", "3", *extra,
    ])


def test_train_writes_checkpoints_adapter_and_loss_log(tiny_released_dir, data, tmp_path):
    out = tmp_path / "run"
    summary = train(args_for(tiny_released_dir, data, out, "--max-steps", "4", "--save-steps", "2",
                             "--save-total-limit", "1"))
    assert summary["steps"] == 4
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-4"]  # older ones pruned
    checkpoint = out / "checkpoint-4"
    names = sorted(p.name for p in checkpoint.iterdir())
    assert {"adapter_model.safetensors", "optimizer.safetensors", "rng_state.safetensors", "trainer_state.json"} <= set(names)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders left
    log = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]
    assert all(entry["loss"] > 0 for entry in log)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_resume_continues_exactly(tiny_released_dir, data, tmp_path):
    straight = tmp_path / "straight"
    train(args_for(tiny_released_dir, data, straight, "--max-steps", "4", "--save-steps", "2"))
    interrupted = tmp_path / "interrupted"
    train(args_for(tiny_released_dir, data, interrupted, "--max-steps", "2", "--save-steps", "2"))
    summary = train(args_for(tiny_released_dir, data, interrupted, "--max-steps", "4", "--save-steps", "2",
                             "--resume"))
    assert summary["steps"] == 4
    expected = load_file(str(straight / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(interrupted / "adapter" / "adapter_model.safetensors"))
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.allclose(expected[key], resumed[key], atol=1e-6, rtol=1e-5), key
    straight_log = (straight / "loss.jsonl").read_text().splitlines()
    resumed_log = (interrupted / "loss.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in resumed_log] == pytest.approx([json.loads(x)["loss"] for x in straight_log])


def test_bad_inputs_give_clear_errors(tiny_released_dir, data, tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        train(args_for(tiny_released_dir, data, tmp_path / "empty", "--max-steps", "1", "--resume"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"prompt": "no answer here"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:record 2 has no response"):
        train(args_for(tiny_released_dir, bad, tmp_path / "bad", "--max-steps", "1"))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--model", "m", "--data", "d", "--output-dir", "o", "--noise-range", "0.9,0.1"])


def test_accelerate_launch_and_cli_subcommand(tiny_released_dir, data, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    out = tmp_path / "launched"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu",
        str(REPO / "examples" / "train_lora.py"),
        "--model", str(tiny_released_dir), "--data", str(data), "--output-dir", str(out),
        "--max-steps", "2", "--save-steps", "1", "--block-length", "8",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train:" in result.stderr  # the progress bar
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]

    from llada_uni_cli.main import build_parser as cli_parser

    parser, modules = cli_parser()
    assert "train" in modules
    args = parser.parse_args(["train", "--model", str(tiny_released_dir), "--data", str(data), "--output-dir",
                              str(tmp_path / "cli"), "--max-steps", "1"])
    assert args.command == "train" and args.max_steps == 1


def test_two_processes_train_data_parallel_and_resume(tiny_released_dir, data, tmp_path):
    # Two CPU processes under torchrun (gloo): what `accelerate launch` on several GPUs does with NCCL.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"), ACCELERATE_USE_CPU="true")
    out = tmp_path / "ddp"

    def launch(*extra):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(REPO / "examples" / "train_lora.py"), "--model", str(tiny_released_dir), "--data", str(data),
            "--output-dir", str(out), "--batch-size", "1", "--block-length", "8", "--save-steps", "1",
            "--no-progress-bar", *extra,
        ]
        # A session of its own, so that a hang kills the workers too, not only the launcher.
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        assert process.returncode == 0, stderr[-3000:]
        return stdout

    stdout = launch("--max-steps", "2")
    assert stdout.count("Trained 2 steps") == 1  # the main process reports, the other one does not
    log = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2]  # one line per step: losses are gathered, then written once
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 2

    with pytest.raises(ValueError, match="written by 2 processes"):
        train(args_for(tiny_released_dir, data, out, "--max-steps", "3", "--resume"))
    launch("--max-steps", "3", "--resume")
    log = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]


@pytest.mark.parametrize("kind", ["FSDP", "DEEPSPEED"])
def test_sharded_training_is_refused_up_front(kind, tiny_released_dir, data, tmp_path, monkeypatch):
    import accelerate
    from accelerate.utils import DistributedType

    # accelerate only builds FSDP / DeepSpeed on an accelerator; report one to the entry point.
    class Sharded(accelerate.Accelerator):
        @property
        def distributed_type(self):
            return getattr(DistributedType, kind)

    monkeypatch.setattr(accelerate, "Accelerator", Sharded)
    out = tmp_path / "sharded"
    with pytest.raises(ValueError, match=f"does not support {getattr(DistributedType, kind).value}.*--multi_gpu"):
        train(args_for(tiny_released_dir, data, out, "--max-steps", "1"))
    assert not out.exists()


def test_qlora_and_objective_options_through_the_entry_point(tiny_released_dir, data, tmp_path):
    out = tmp_path / "qlora"
    summary = train(args_for(tiny_released_dir, data, out, "--max-steps", "2", "--save-steps", "2", "--load-in-4bit",
                             "--train-routed-experts", "--form", "one_block", "--per-block-noise",
                             "--loss-weighting", "inverse_t", "--noise-range", "0.05,1.0", "--lora-r", "4"))
    assert summary["steps"] == 2 and all(loss == loss for loss in summary["losses"])  # finite, not NaN
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert any(".experts." in key for key in adapter)  # per-expert 4-bit modules got adapters


def test_picture_records_through_the_entry_point(tiny_released_dir, images_dir, tmp_path):
    pictures = sorted(images_dir.glob("*.png"))
    path = tmp_path / "images.jsonl"
    path.write_text(
        json.dumps({"prompt": "a landscape", "image": str(pictures[0])}) + "\n"
        + json.dumps({"instruction": "make it brighter", "source_image": str(pictures[1]),
                      "edited_image": str(pictures[1])}) + "\n"
    )
    out = tmp_path / "pictures"
    summary = train(args_for(tiny_released_dir, path, out, "--max-steps", "1", "--batch-size", "2",
                             "--text-dropout", "0.1", "--image-dropout", "0.1"))
    assert summary["steps"] == 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
