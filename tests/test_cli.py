"""The `llada-uni` console script: help of every subcommand, the offline demo, usage errors, the subcommands on a
converted and a released folder."""

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from PIL import Image

from llada_uni_cli import DEMO_MODEL_DIR
from llada_uni_cli.main import build_parser, main

from conftest import IMAGES, TINY_RELEASED


SUBCOMMANDS = ["demo", "t2i", "understand", "edit", "decode", "convert"]


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
    assert "needs 4" in err and "Traceback" not in err
    assert main(["t2i", "--model", str(DEMO_MODEL_DIR), "--prompt", "x", "--output", str(tmp_path / "x.jpg")]) == 1
    assert "must end in .png" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_demo_offline_from_the_console_script(tmp_path):
    """README's run command, in a subprocess, offline, with an empty HF cache."""
    result = _run(["demo", "--no-progress"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out_dir = tmp_path / "llada-uni-demo"
    t2i, edit, text = out_dir / "t2i.png", out_dir / "edit.png", out_dir / "understanding.txt"
    for path in (t2i, edit, text):
        assert path.is_file(), path
        assert str(path.resolve()) in result.stdout  # the demo says where its files are
    assert "RANDOM weights" in result.stdout
    assert Image.open(t2i).size == (256, 256)
    assert Image.open(edit).size[0] > 0
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
