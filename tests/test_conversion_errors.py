"""Bad input gets a clear error and leaves nothing behind; an interrupted conversion leaves DST untouched."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from llada_uni_conversion import CheckpointError, convert
from llada_uni_conversion.safetensors_stream import read_header, write_streaming

from conftest import TINY_RELEASED


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "conversion" / "convert_llada_uni.py"


@pytest.fixture
def released(tmp_path):
    """A private copy of the tiny release that a test may damage."""
    src = tmp_path / "released"
    shutil.copytree(TINY_RELEASED, src)
    return src


def _quiet(**kwargs):
    return dict(progress=False, log=lambda message: None, **kwargs)


def _leftovers(parent: Path, keep=("released",)):
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


@pytest.mark.parametrize(
    "relative",
    [
        "config.json",
        "tokenizer.json",
        "model-00002-of-00002.safetensors",
        "image_tokenizer/image_tokenizer.safetensors",
        "image_tokenizer/sigvq_embedding.pt",
        "decoder/decoder_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ],
)
def test_missing_file_is_named(released, relative):
    (released / relative).unlink()
    dst = released.parent / "out"
    with pytest.raises(CheckpointError) as info:
        convert(released, dst, **_quiet())
    message = str(info.value)
    assert Path(relative).name in message or relative.split("/")[0] in message
    assert _leftovers(released.parent) == []


def test_truncated_shard(released):
    shard = released / "model-00001-of-00002.safetensors"
    size = shard.stat().st_size
    with open(shard, "r+b") as f:
        f.truncate(size - 1000)
    with pytest.raises(CheckpointError, match="truncated") as info:
        convert(released, released.parent / "out", **_quiet())
    assert shard.name in str(info.value)
    assert _leftovers(released.parent) == []


def test_header_only_file_is_truncated(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x10\x00")
    with pytest.raises(CheckpointError, match="truncated"):
        read_header(path)


def test_weight_with_wrong_shape(released):
    shard = released / "model-00002-of-00002.safetensors"
    tensors = load_file(shard)
    name = sorted(tensors)[0]
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, *tensors[name].shape[1:])
    save_file(tensors, shard, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="wrong shape") as info:
        convert(released, released.parent / "out", **_quiet())
    assert name in str(info.value)
    assert _leftovers(released.parent) == []


def test_decoder_weight_with_wrong_shape(released):
    path = released / "decoder-turbo" / "model.safetensors"
    tensors = load_file(path)
    name = next(k for k in sorted(tensors) if k.startswith("semantic_embedder."))
    tensors[name] = torch.zeros(*tensors[name].shape[:-1], tensors[name].shape[-1] + 3)
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="wrong shape") as info:
        convert(released, released.parent / "out", **_quiet())
    assert "cap_embedder" in str(info.value)


def test_existing_dst_is_refused_without_overwrite(released):
    dst = released.parent / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert(released, dst, **_quiet())
    assert (dst / "keep.txt").read_text() == "mine"
    assert _leftovers(released.parent) == ["out"]


def test_dst_inside_src_is_refused(released):
    with pytest.raises(ValueError, match="outside SRC"):
        convert(released, released / "converted", **_quiet())


def test_bad_dtype_is_rejected(released):
    with pytest.raises(ValueError, match="float16"):
        convert(released, released.parent / "out", dtype="float8", **_quiet())


def test_overwrite_replaces_dst(released):
    dst = released.parent / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    convert(released, dst, overwrite=True, verify=False, **_quiet())
    assert not (dst / "old.txt").exists()
    assert (dst / "config.json").is_file()
    assert _leftovers(released.parent) == ["out"]


def _script(*args, **popen_kwargs):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, **popen_kwargs)


def _kill_midway(process, parent: Path, dst_name: str, sig):
    """Send `sig` once the conversion has started writing into its temporary folder."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        partial = [p for p in parent.glob(f".{dst_name}.partial-*") if any(p.iterdir())]
        if partial:
            process.send_signal(sig)
            return partial[0]
        if process.poll() is not None:
            raise AssertionError(f"the conversion ended before it could be interrupted: {process.returncode}")
        time.sleep(0.005)
    process.kill()
    raise AssertionError("the conversion never started writing")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_conversion_leaves_dst_untouched(released, sig):
    dst = released.parent / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    process = _script(released, dst, "--overwrite", "--no-progress", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=True)
    _kill_midway(process, released.parent, "out", sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "interrupted" in stderr
    assert sorted(p.name for p in dst.iterdir()) == ["keep.txt"]
    assert _leftovers(released.parent) == ["out"]


def test_killed_conversion_is_cleaned_up_by_the_next_run(released):
    dst = released.parent / "out"
    process = _script(released, dst, "--no-progress", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = _kill_midway(process, released.parent, "out", signal.SIGKILL)
    process.wait(timeout=60)
    assert not dst.exists()
    assert partial.exists()  # SIGKILL gives no chance to clean up ...
    convert(released, dst, verify=False, **_quiet())
    assert not partial.exists()  # ... the next conversion to the same DST removes the dead run's folder
    assert _leftovers(released.parent) == ["out"]


def test_script_reports_errors_with_exit_status(released, tmp_path):
    (released / "tokenizer.json").unlink()
    process = _script(released, tmp_path / "out", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "tokenizer.json" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_script_usage_error(tmp_path):
    process = _script(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "SRC and DST" in stderr


def test_streaming_writer_round_trip(tmp_path):
    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.randn(7).to(torch.bfloat16),
        "c": torch.arange(4, dtype=torch.int64).reshape(2, 2),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
    }
    fetched = []

    def entry(name):
        def fetch():
            fetched.append(name)
            return tensors[name]
        return name, tensors[name].dtype, tuple(tensors[name].shape), fetch

    path = tmp_path / "x.safetensors"
    write_streaming(path, [entry(n) for n in tensors])
    assert fetched == list(tensors)  # one at a time, in order
    loaded = load_file(path)
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
    infos = read_header(path)
    assert infos["b"].shape == (7,) and infos["b"].dtype == torch.bfloat16


def test_streaming_writer_rejects_a_tensor_unlike_its_header(tmp_path):
    with pytest.raises(CheckpointError, match="expected"):
        write_streaming(tmp_path / "x.safetensors", [("a", torch.float32, (2,), lambda: torch.zeros(3))])


def test_dtype_conversion_keeps_the_router_bias_in_float32(released, tmp_path):
    dst = tmp_path / "bf16"
    convert(released, dst, dtype="bfloat16", verify=True, **_quiet())
    with open(dst / "model.safetensors.index.json") as f:
        weight_map = json.load(f)["weight_map"]
    dtypes = {}
    for shard in set(weight_map.values()):
        dtypes.update({k: v.dtype for k, v in read_header(dst / shard).items()})
    assert {d for k, d in dtypes.items() if not k.endswith("expert_bias")} == {torch.bfloat16}
    assert {d for k, d in dtypes.items() if k.endswith("expert_bias")} == {torch.float32}


def test_verification_failure_names_the_difference_and_writes_nothing(released, monkeypatch):
    """A converted weight that does not match its source (here: the embedding rows permuted while writing) is caught by
    the built-in verification; DST is not created."""
    from llada_uni_conversion import VerificationError, safetensors_stream

    original_get = safetensors_stream.ShardReader.get

    def corrupting_get(self, path, name):
        tensor = original_get(self, path, name)
        if name == "model.word_embeddings.weight":
            tensor = tensor.flip(0)
        return tensor

    monkeypatch.setattr(safetensors_stream.ShardReader, "get", corrupting_get)
    dst = released.parent / "out"
    with pytest.raises(VerificationError, match="backbone logits") as info:
        convert(released, dst, **_quiet())
    assert "nothing was written" in str(info.value)
    assert not dst.exists()
    assert _leftovers(released.parent) == []


def test_verification_compares_every_weight_and_runs_truncated_models(released, tmp_path):
    """`verify_conversion` reads both sides tensor by tensor; the functional check can run at reduced depth (what a
    checkpoint larger than one shard gets) and still catches a damaged early layer."""
    from llada_uni_conversion import inspect_released, verify_conversion
    from llada_uni_conversion.backbone import verify_backbone

    dst = tmp_path / "out"
    convert(released, dst, verify=False, **_quiet())
    ckpt = inspect_released(released)
    assert verify_conversion(ckpt, dst) == []
    generator = torch.Generator().manual_seed(0)
    assert verify_backbone(released, dst, ckpt.backbone.config, None, "cpu", generator, num_layers=2) == []

    shard = dst / "model-00001-of-00002.safetensors"
    tensors = load_file(shard)
    name = "model.layers.0.attention.query_key_value.weight"
    assert name in tensors
    tensors[name] = tensors[name] * 1.5
    save_file(tensors, shard, metadata={"format": "pt"})
    problems = verify_conversion(ckpt, dst)
    assert any(name in p and "differs" in p for p in problems), problems
    assert any("backbone logits" in p for p in problems), problems
    truncated = verify_backbone(released, dst, ckpt.backbone.config, None, "cpu", generator, num_layers=2)
    assert truncated and "first 2 layers" in truncated[0]
