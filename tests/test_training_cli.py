"""`llada-uni train`: its options become TrainingArguments, it trains through LLaDAUniMaskedDiffusionTrainer (LoRA,
QLoRA, full), resumes exactly, refuses an earlier run's folder, and every failure is one line."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from llada_uni_cli.train import build_parser, build_training_arguments, run, train


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


def argv_for(model_dir, data, out, *extra):
    return [
        "--model", str(model_dir), "--data", str(data), "--output-dir", str(out), "--batch-size", "2",
        "--learning-rate", "1e-2", "--block-length", "8", "--no-progress", "--seed", "3", "--device", "cpu", *extra,
    ]


def args_for(*args, **kwargs):
    return build_parser().parse_args(argv_for(*args, **kwargs))


def log_of(out):
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def test_options_become_training_arguments(tiny_released_dir, data, tmp_path):
    args = args_for(tiny_released_dir, data, tmp_path / "o", "--max-steps", "7", "--gradient-accumulation-steps", "2",
                    "--lr-scheduler", "cosine", "--warmup-steps", "2", "--save-total-limit", "2", "--save-steps", "3",
                    "--gradient-checkpointing", "--report-to", "tensorboard",
                    "--training-arg", "optim=adafactor", "--training-arg", "logging_first_step=true",
                    "--training-arg", "fsdp=true", "--training-arg", f"fsdp_config={REPO}/examples/accelerate/fsdp2.json",
                    "--training-arg", "max_grad_norm=0.5")
    training_args = build_training_arguments(args)
    assert (training_args.max_steps, training_args.gradient_accumulation_steps, training_args.per_device_train_batch_size) == (7, 2, 2)
    assert training_args.lr_scheduler_type == "cosine" and training_args.warmup_steps == 2
    assert (training_args.save_steps, training_args.save_total_limit, training_args.seed) == (3, 2, 3)
    assert training_args.activation_checkpointing and training_args.use_cpu and training_args.disable_tqdm
    assert training_args.report_to == ["tensorboard"]
    # --training-arg: any field, typed as transformers types it, over the options
    assert training_args.optim == "adafactor" and training_args.logging_first_step is True
    assert training_args.max_grad_norm == 0.5
    assert training_args.fsdp is True and training_args.fsdp_config["transformer_layer_cls_to_wrap"] == ["LLaDAUniDecoderLayer"]

    def error(*extra):
        with pytest.raises(ValueError) as info:
            build_training_arguments(args_for(tiny_released_dir, data, tmp_path / "o", *extra))
        return str(info.value)

    assert "has no field 'warmup_ration' (did you mean warmup_steps" in error("--training-arg", "warmup_ration=0.1")
    assert "max_grad_norm=abc: could not convert string to float" in error("--training-arg", "max_grad_norm=abc")
    assert "'nope' is not one of linear, cosine" in error("--training-arg", "lr_scheduler_type=nope")
    assert "--bf16 and --fp16" in error("--bf16", "--fp16")
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv_for(tiny_released_dir, data, tmp_path, "--training-arg", "no-equals-sign"))


def test_every_option_has_help_and_the_shared_names(tiny_released_dir):
    parser = build_parser()
    options = {option: action for action in parser._actions for option in action.option_strings}
    for option, action in options.items():
        if option in ("-h", "--help") or action.help == "==SUPPRESS==":
            continue
        assert action.help, f"{option} has no help text"
    for option in ("--no-progress", "--device", "--seed", "--dtype", "--model", "--training-arg", "--resume",
                   "--overwrite", "--full-finetuning", "--eval-data"):
        assert option in options
    # the old spelling still parses, hidden
    assert options["--no-progress-bar"].help == "==SUPPRESS=="
    parsed = parser.parse_args(["--model", str(tiny_released_dir), "--data", "d", "--output-dir", "o", "--no-progress-bar"])
    assert parsed.progress is False


def test_train_writes_checkpoints_adapter_and_loss_log_and_resumes_exactly(tiny_released_dir, data, tmp_path):
    straight = tmp_path / "straight"
    summary = train(args_for(tiny_released_dir, data, straight, "--max-steps", "4", "--save-steps", "2",
                             "--lr-scheduler", "linear"))
    assert summary["steps"] == 4
    assert sorted(p.name for p in straight.iterdir()) == ["adapter", "checkpoint-2", "checkpoint-4", "loss.jsonl"]
    assert (straight / "adapter" / "adapter_model.safetensors").is_file()
    assert (straight / "adapter" / "tokenizer_config.json").is_file()
    assert [entry["step"] for entry in log_of(straight)] == [1, 2, 3, 4]

    # stopped after step 2 (simulated: the later checkpoint and output removed), then resumed
    interrupted = tmp_path / "interrupted"
    train(args_for(tiny_released_dir, data, interrupted, "--max-steps", "4", "--save-steps", "2",
                   "--lr-scheduler", "linear"))
    for name in ("checkpoint-4", "adapter"):
        __import__("shutil").rmtree(interrupted / name)
    summary = train(args_for(tiny_released_dir, data, interrupted, "--max-steps", "4", "--save-steps", "2",
                             "--lr-scheduler", "linear", "--resume"))
    assert summary["steps"] == 4
    assert log_of(interrupted) == log_of(straight)  # same losses, learning rates and gradient norms, bit for bit
    expected = load_file(str(straight / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(interrupted / "adapter" / "adapter_model.safetensors"))
    assert expected.keys() == resumed.keys() and all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_failures_are_one_line(tiny_released_dir, data, tmp_path, capsys):
    def one_line(*extra, data_path=data, out=tmp_path / "run"):
        assert run(args_for(tiny_released_dir, data_path, out, *extra)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) >= 1 and err[-1].startswith("llada-uni train: error: ")
        assert not any(line.startswith("Traceback") for line in err)
        return err[-1]

    assert "holds no complete checkpoint-N folder" in one_line("--max-steps", "1", "--resume", out=tmp_path / "empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"prompt": "no answer here"}) + "\n")
    assert "bad.jsonl:2 (row 1), column 'response': no response" in one_line("--max-steps", "1", data_path=bad)
    bad.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "\xff"}\n')
    assert "bad.jsonl:2: not UTF-8 text" in one_line("--max-steps", "1", data_path=bad)
    assert "TrainingArguments has no field" in one_line("--training-arg", "not_a_field=1")
    # an earlier run in the output folder is refused unless --resume / --overwrite
    done = tmp_path / "done"
    train(args_for(tiny_released_dir, data, done, "--max-steps", "1", "--save-steps", "1"))
    message = one_line("--max-steps", "1", out=done)
    assert "holds an earlier run (checkpoint-1, adapter, loss.jsonl); pass --resume" in message
    before = (done / "loss.jsonl").read_text()
    assert run(args_for(tiny_released_dir, data, done, "--max-steps", "2", "--save-steps", "2", "--overwrite")) == 0
    assert sorted(p.name for p in done.iterdir()) == ["adapter", "checkpoint-2", "loss.jsonl"]
    assert (done / "loss.jsonl").read_text() != before


def test_the_console_command_prints_one_line_and_exits_1(tiny_released_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\nnot json\n')
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "llada_uni_cli.main", "train", *argv_for(tiny_released_dir, bad, tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("llada-uni train: error: ")
    assert "bad.jsonl:2: not valid JSON" in result.stderr


def test_qlora_and_objective_options(tiny_released_dir, data, tmp_path):
    out = tmp_path / "qlora"
    summary = train(args_for(tiny_released_dir, data, out, "--max-steps", "2", "--save-steps", "2", "--load-in-4bit",
                             "--train-routed-experts", "--form", "one_block", "--per-block-noise",
                             "--loss-weighting", "inverse_t", "--noise-range", "0.05,1.0", "--lora-r", "4"))
    assert summary["steps"] == 2 and all(loss == loss for loss in summary["losses"])  # finite, not NaN
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert any(".experts." in key for key in adapter)  # per-expert 4-bit modules got adapters


def test_full_finetuning_and_picture_records(tiny_released_dir, images_dir, tmp_path):
    pictures = sorted(images_dir.glob("*.png"))
    path = tmp_path / "images.jsonl"
    path.write_text(
        json.dumps({"prompt": "a landscape", "image": pictures[0].name}) + "\n"  # relative to the data file
        + json.dumps({"instruction": "make it brighter", "source_image": str(pictures[1]),
                      "edited_image": str(pictures[1])}) + "\n"
        + json.dumps({"prompt": "Say hello.", "response": "Hello!"}) + "\n"
    )
    (tmp_path / pictures[0].name).write_bytes(pictures[0].read_bytes())
    out = tmp_path / "full"
    summary = train(args_for(tiny_released_dir, path, out, "--max-steps", "1", "--batch-size", "3", "--full-finetuning",
                             "--text-dropout", "0.1", "--image-dropout", "0.1", "--save-steps", "1"))
    assert summary["steps"] == 1
    trained = AutoModelForCausalLM.from_pretrained(out / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_released_dir)
    changed = {name for name, p in trained.named_parameters() if not torch.equal(p, base.get_parameter(name))}
    assert "model.layers.1.mlp.experts.gate_up_proj" in changed and "model.word_embeddings.weight" in changed
    assert not any(name.endswith("mlp.gate.weight") for name in changed)  # the router stays frozen
    checkpoint = AutoModelForCausalLM.from_pretrained(out / "checkpoint-1")
    assert all(torch.equal(p, trained.get_parameter(n)) for n, p in checkpoint.named_parameters())
