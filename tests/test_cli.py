"""The `llada-uni` console script: help of every subcommand, the offline demo, usage errors, the subcommands on a
converted and a released folder."""

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llada_uni_cli import DEMO_MODEL_DIR
from llada_uni_cli.main import build_parser, main

from conftest import IMAGES, TINY_RELEASED


SUBCOMMANDS = ["demo", "t2i", "understand", "edit", "inpaint", "outpaint", "chat", "decode", "convert", "app"]


def _console_script() -> list[str]:
    """The installed `llada-uni` entry point (what README's install command puts on PATH)."""
    found = shutil.which("llada-uni") or shutil.which("llada-uni", path=sysconfig.get_path("scripts"))
    if found is None:
        raise AssertionError("the `llada-uni` console script is not installed; run README's install command")
    return [found]


def _run(args, tmp_path, timeout=600):
    env = dict(
        os.environ,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return subprocess.run(_console_script() + list(map(str, args)), capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=timeout)


def test_every_subcommand_is_registered():
    parser, modules = build_parser()
    assert set(SUBCOMMANDS) <= set(modules)
    try:
        import llada_uni_cli.train  # noqa: F401
    except ImportError:
        pass
    else:
        assert "train" in modules


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS, "train"])
def test_help(command, capsys):
    parser, modules = build_parser()
    if command is not None and command not in modules:
        pytest.fail(f"subcommand {command!r} is not registered")
    with pytest.raises(SystemExit) as info:
        main(([command] if command else []) + ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: llada-uni" in out
    if command not in (None, "train"):
        for option in ("--model", "--seed", "--device", "--dtype"):
            assert option in out, f"{command} --help lacks {option}"


def test_console_script_help(tmp_path):
    result = _run(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for command in SUBCOMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["t2i", "--prompt", "x", "--model", "/no/such/folder"], "is not a folder"),
        (["t2i", "--prompt", "x", "--model", str(DEMO_MODEL_DIR), "--steps", "0"], "positive integer"),
        (["t2i", "--prompt", "x", "--model", str(DEMO_MODEL_DIR), "--seed", "-1"], "seed"),
        (["t2i", "--prompt", "x", "--model", str(DEMO_MODEL_DIR), "--dtype", "int8"], "invalid choice"),
        (["t2i", "--prompt", "x", "--model", str(DEMO_MODEL_DIR), "--device", "nonsense"], "invalid device"),
        (["understand", "--model", str(DEMO_MODEL_DIR), "--image", "/no/such.png"], "is not a file"),
        (["edit", "--model", str(DEMO_MODEL_DIR), "--image", str(IMAGES / "landscape_150x100.png")], "--instruction"),
        (["convert", "only-one-path"], "SRC and DST"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors_exit_non_zero_without_traceback(tmp_path, capsys):
    codes = tmp_path / "codes.json"
    codes.write_text(json.dumps({"token_ids": [1, 2, 3], "h": 2, "w": 2}))
    assert main(["decode", "--model", str(DEMO_MODEL_DIR), "--codes", str(codes), "--output",
                 str(tmp_path / "x.png"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{codes}: Got 3 codes per image" in err and "needs h * w = 4" in err and "Traceback" not in err
    assert main(["t2i", "--model", str(DEMO_MODEL_DIR), "--prompt", "x", "--output", str(tmp_path / "x.xyz")]) == 1
    assert "PIL writes no image format with the extension '.xyz'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*x.xyz*"))


def test_demo_offline_from_the_console_script(tmp_path):
    """README's run command, in a subprocess, offline, with an empty HF cache."""
    result = _run(["demo", "--no-progress"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out_dir = tmp_path / "llada-uni-demo"
    t2i, edit, text = out_dir / "t2i.png", out_dir / "edit.png", out_dir / "understanding.txt"
    inpaint = out_dir / "inpaint.png"
    for path in (t2i, edit, text, inpaint):
        assert path.is_file(), path
        assert str(path.resolve()) in result.stdout  # the demo says where its files are
    assert "RANDOM weights" in result.stdout
    assert Image.open(t2i).size == (256, 256)
    assert Image.open(edit).size[0] > 0
    # Editing resolution: 16 px per code in, 32 px per code out. Away from the repainted top-left quarter (and its
    # feathered border) the pixels are the source's, upscaled as the pipeline pastes them back.
    repainted = np.asarray(Image.open(inpaint).convert("RGB"))
    assert repainted.shape == (512, 512, 3)
    source = np.asarray(Image.open(t2i).convert("RGB").resize((512, 512), Image.BICUBIC))
    assert np.array_equal(repainted[320:, 320:], source[320:, 320:])
    answer = text.read_text()
    assert "random weights" in answer and "Q: Describe this image." in answer
    assert "Answer:" in result.stdout
    assert not list((tmp_path / "hf-home").rglob("*.safetensors"))  # nothing was downloaded or cached


def test_subcommands_on_a_released_folder(tmp_path, capsys):
    """t2i -> decode -> understand -> edit straight from the released layout, small sizes."""
    common = ["--model", str(TINY_RELEASED), "--no-progress", "--seed", "3"]
    png, codes = tmp_path / "fox.png", tmp_path / "fox.json"
    assert main(["t2i", *common, "--prompt", "A red fox", "--height", "256", "--width", "320", "--steps", "4",
                 "--output", str(png), "--save-codes", str(codes), "--decoder-steps", "2"]) == 0
    saved = json.loads(codes.read_text())
    assert (saved["h"], saved["w"]) == (8, 10) and len(saved["token_ids"]) == 80
    assert Image.open(png).size == (320, 256)

    decoded = tmp_path / "decoded.png"
    assert main(["decode", *common, "--codes", str(codes), "--output", str(decoded), "--decoder", "normal",
                 "--decoder-steps", "2"]) == 0
    assert Image.open(decoded).size == (320, 256)

    capsys.readouterr()
    assert main(["understand", *common, "--image", str(IMAGES / "landscape_150x100.png"), "--steps", "4",
                 "--gen-length", "8", "--block-length", "8"]) == 0
    assert capsys.readouterr().out.strip()

    edited = tmp_path / "edited.png"
    assert main(["edit", *common, "--image", str(IMAGES / "square_64x64_rgba.png"), "--instruction", "Blue.",
                 "--steps", "2", "--output", str(edited), "--decoder-steps", "1"]) == 0
    assert Image.open(edited).size[0] > 0


def test_unset_sampling_options_come_from_the_generation_config(tmp_path):
    """Options left out of the command line take the folder's `generation_config.json`; given ones override it."""
    model = tmp_path / "model"
    shutil.copytree(DEMO_MODEL_DIR, model)
    config_path = model / "generation_config.json"
    config = json.loads(config_path.read_text())
    config.update(image_h=256, image_w=320, image_steps=2, block_length=16)
    config_path.write_text(json.dumps(config))
    common = ["--model", str(model), "--no-progress", "--decoder-steps", "1", "--prompt", "A fox"]
    png, codes = tmp_path / "fox.png", tmp_path / "fox.json"
    assert main(["t2i", *common, "--output", str(png), "--save-codes", str(codes)]) == 0
    saved = json.loads(codes.read_text())
    assert (saved["h"], saved["w"]) == (8, 10)
    assert Image.open(png).size == (320, 256)
    assert main(["t2i", *common, "--width", "384", "--output", str(png), "--save-codes", str(codes)]) == 0
    saved = json.loads(codes.read_text())
    assert (saved["h"], saved["w"]) == (8, 12)


def test_understand_several_pictures_in_one_prompt(capsys):
    from diffusers_llada_uni import LLaDAUniUnderstandingPipeline

    pictures = [IMAGES / "landscape_150x100.png", IMAGES / "portrait_90x200.png"]
    settings = {"steps": 4, "gen_length": 8, "block_length": 8}
    capsys.readouterr()
    assert main(["understand", "--model", str(TINY_RELEASED), "--no-progress", "--image", *map(str, pictures),
                 "--question", "What differs?", *[f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]]) == 0
    printed = capsys.readouterr().out.strip()
    reader = LLaDAUniUnderstandingPipeline.from_released(TINY_RELEASED, load_decoders=())
    reader.set_progress_bar_config(disable=True)
    assert printed == reader(image=[pictures], prompt="What differs?", **settings).text[0].strip()


def test_convert_subcommand(tmp_path):
    dst = tmp_path / "converted"
    assert main(["convert", str(TINY_RELEASED), str(dst), "--no-verify", "--no-progress"]) == 0
    assert (dst / "config.json").is_file()
    # Refused the second time without --overwrite, with a clear message and status 1.
    assert main(["convert", "--model", str(TINY_RELEASED), str(dst), "--no-progress"]) == 1


def test_demo_model_is_labelled_random():
    config = json.loads((DEMO_MODEL_DIR / "config.json").read_text())
    assert config["llada_uni_random_weights"] is True
    assert "RANDOM WEIGHTS" in (DEMO_MODEL_DIR / "README.md").read_text()
    size = sum(p.stat().st_size for p in DEMO_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024
    assert not list(DEMO_MODEL_DIR.rglob("*.py"))  # the demo runs with the package, no remote code


def test_ci_installs_into_a_fresh_venv_with_readme_commands():
    """`.ci/run` builds a fresh virtual environment and runs README's install and test commands verbatim."""
    repo = Path(__file__).resolve().parents[1]
    ci = (repo / ".ci" / "run").read_text()
    readme = (repo / "README.md").read_text()
    assert "python3 -m venv" in ci
    install = [line for line in readme.splitlines() if line.startswith("pip install")]
    test = [line for line in readme.splitlines() if line.startswith("python -m pytest")]
    assert install and test
    assert install[0] in ci.splitlines() and test[0] in ci.splitlines()
    assert "llada-uni demo" in readme.splitlines()


def test_shipped_demo_model_is_what_the_converter_makes_now(tmp_path):
    """The demo model is generated by conversion/make_demo_model.py; if a config format changes, regenerate it."""
    from llada_uni_conversion import convert

    fresh = tmp_path / "demo"
    convert(TINY_RELEASED, fresh, verify=False, include_remote_code=False, progress=False, log=lambda m: None)
    shipped_files = {p.relative_to(DEMO_MODEL_DIR).as_posix() for p in DEMO_MODEL_DIR.rglob("*") if p.is_file()}
    fresh_files = {p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file()}
    # The top-level card is the converter's plus the demo's random-weights notice.
    assert shipped_files - {"README.md"} == fresh_files - {"README.md"}
    for name in sorted(fresh_files - {"README.md"}):
        if name.endswith(".json"):
            shipped = json.loads((DEMO_MODEL_DIR / name).read_text())
            now = json.loads((fresh / name).read_text())
            for data in (shipped, now):
                data.pop("llada_uni_random_weights", None)
            assert shipped == now, f"{name} is stale ({ {k: (shipped.get(k), now.get(k)) for k in set(shipped) | set(now) if shipped.get(k) != now.get(k)} }): run `python conversion/make_demo_model.py --overwrite`"
        else:
            assert (DEMO_MODEL_DIR / name).read_bytes() == (fresh / name).read_bytes(), name


def _codes_file(tmp_path, h=8, w=8):
    path = tmp_path / "codes.json"
    path.write_text(json.dumps({"token_ids": [(7 * i) % 64 for i in range(h * w)], "h": h, "w": w}))
    return path


def _last_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    return lines[-1]


@pytest.mark.parametrize("extension, image_format", [(".jpg", "JPEG"), (".webp", "WEBP"), (".tiff", "TIFF")])
def test_output_takes_any_extension_pil_writes(extension, image_format, tmp_path):
    output = tmp_path / f"decoded{extension}"
    assert main(["decode", "--model", str(DEMO_MODEL_DIR), "--codes", str(_codes_file(tmp_path)), "--output",
                 str(output), "--decoder-steps", "1", "--no-progress"]) == 0
    with Image.open(output) as image:
        assert image.format == image_format and image.size == (256, 256)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["codes.json", output.name])


def test_decode_says_a_picture_is_not_a_codes_file(tmp_path, capsys):
    picture = IMAGES / "landscape_150x100.png"
    assert main(["decode", "--model", str(DEMO_MODEL_DIR), "--codes", str(picture), "--output",
                 str(tmp_path / "x.png"), "--no-progress"]) == 1
    assert _last_line(capsys.readouterr().err) == (
        f"llada-uni decode: error: {picture} is not a codes file: it is binary, not the JSON `llada-uni t2i "
        '--save-codes` writes: {"token_ids": [codes], "h": rows, "w": columns}.'
    )


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache holding the demo model as `test-org/tiny-uni`, laid out as `hf download` does."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--test-org--tiny-uni"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(DEMO_MODEL_DIR, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_model_given_as_a_hub_id_resolves_through_the_local_cache(hub_cache, tmp_path, capsys):
    output = tmp_path / "hub.png"
    assert main(["decode", "--model", "test-org/tiny-uni", "--codes", str(_codes_file(tmp_path)), "--output",
                 str(output), "--decoder-steps", "1", "--no-progress"]) == 0
    assert Image.open(output).size == (256, 256)
    capsys.readouterr()
    assert main(["decode", "--model", "test-org/not-downloaded", "--codes", str(_codes_file(tmp_path)),
                 "--output", str(output), "--no-progress"]) == 1
    line = _last_line(capsys.readouterr().err)
    assert line.startswith("llada-uni decode: error: 'test-org/not-downloaded' is neither a folder nor a model in the "
                           f"local Hugging Face cache ({hub_cache})")
    assert "HF_HUB_OFFLINE is set" in line and "hf download test-org/not-downloaded" in line


def test_any_failure_ends_in_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    picture = IMAGES / "landscape_150x100.png"
    understand = ["understand", "--image", str(picture), "--steps", "1", "--gen-length", "4", "--block-length", "4",
                  "--no-progress"]

    # PIL refuses a picture larger than twice its pixel limit (a decompression bomb).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert main([*understand, "--model", str(DEMO_MODEL_DIR)]) == 1
    line = _last_line(capsys.readouterr().err)
    assert line.startswith(f"llada-uni understand: error: {picture}: DecompressionBombError: Image size (15000 pixels)")
    monkeypatch.undo()

    # Truncated weights: safetensors' own error, with the damaged file named.
    damaged = tmp_path / "damaged"
    shutil.copytree(DEMO_MODEL_DIR, damaged)
    weights = damaged / "model-00002-of-00002.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main([*understand, "--model", str(damaged)]) == 1
    line = _last_line(capsys.readouterr().err)
    assert line.startswith(f"llada-uni understand: error: {weights}: damaged or truncated safetensors file "
                           "(SafetensorError: ")

    # A broken JSON file of the model folder.
    (damaged / "model-00002-of-00002.safetensors").write_bytes((DEMO_MODEL_DIR / weights.name).read_bytes())
    (damaged / "config.json").write_text('{"model_type": "llada_uni",')
    assert main([*understand, "--model", str(damaged)]) == 1
    line = _last_line(capsys.readouterr().err)
    assert line.startswith(f"llada-uni understand: error: {damaged / 'config.json'}: not a valid JSON "
                           "file (JSONDecodeError: ")

    # Anything else a library may raise.
    from diffusers_llada_uni import LLaDAUniUnderstandingPipeline

    def broken(*args, **kwargs):
        raise KeyError("no such part")

    monkeypatch.setattr(LLaDAUniUnderstandingPipeline, "__call__", broken)
    assert main([*understand, "--model", str(DEMO_MODEL_DIR)]) == 1
    assert _last_line(capsys.readouterr().err) == "llada-uni understand: error: KeyError: 'no such part'"


def test_a_full_disk_loses_no_file(tmp_path, capsys, monkeypatch):
    import errno

    codes, image = tmp_path / "codes.json", tmp_path / "fox.png"
    codes.write_text('{"token_ids": [1, 2, 3, 4], "h": 2, "w": 2}\n')
    Image.new("RGB", (4, 4), "red").save(image)
    before = {path: path.read_bytes() for path in (codes, image)}
    (tmp_path / "in").mkdir()
    codes_in = _codes_file(tmp_path / "in")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    common = ["--model", str(DEMO_MODEL_DIR), "--no-progress", "--decoder-steps", "1"]
    assert main(["t2i", *common, "--prompt", "A fox", "--height", "256", "--width", "256", "--steps", "2",
                 "--output", str(image), "--save-codes", str(codes)]) == 1
    assert _last_line(capsys.readouterr().err) == f"llada-uni t2i: error: {codes}: [Errno 28] No space left on device"
    assert main(["decode", *common, "--codes", str(codes_in), "--output", str(image)]) == 1
    assert _last_line(capsys.readouterr().err) == (
        f"llada-uni decode: error: {image}: [Errno 28] No space left on device"
    )
    # Both files are as they were, and nothing half-written is left next to them.
    assert {path: path.read_bytes() for path in (codes, image)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.json", "fox.png", "in"]
