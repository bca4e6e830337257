# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The Python examples of README.md's "Using it" section run as written, on the tiny checkpoint.

Only what a reader would change for a small machine is substituted (paths, picture names, picture sizes); each
substitution must find its text, so a README edit that drops one fails here instead of going stale.
"""

import re

from conftest import FIXTURES, IMAGES, TINY_RELEASED


REPO = FIXTURES.parents[1]


SUBSTITUTIONS = [
    ('"path/to/LLaDA2.0-Uni"', repr(str(TINY_RELEASED))),
    ('"cat.png"', repr(str(IMAGES / "landscape_150x100.png"))),
    ('"dog.png"', repr(str(IMAGES / "portrait_90x200.png"))),
    ('.from_pretrained("converted/")', f".from_released({str(TINY_RELEASED)!r})"),
    ("image_h=1024, image_w=1024", "image_h=256, image_w=256"),
    ("height=1024, width=1024", "height=256, width=256"),
]


def _using_it_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_using_it_examples_run(tmp_path, monkeypatch):
    blocks = _using_it_blocks()
    assert len(blocks) == 3
    code = "\n".join(blocks)
    for old, new in SUBSTITUTIONS:
        assert old in code, f"README no longer contains {old!r}: update this test's substitutions"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md (Using it)", "exec"), namespace)  # noqa: S102
    # What the examples produce, so a silently empty result cannot pass.
    assert namespace["out"].h == namespace["out"].w == 8
    assert len(namespace["edited"].token_ids) == namespace["src"]["h"] * namespace["src"]["w"]
    assert namespace["image"].size == (256, 256)
    assert isinstance(namespace["answer"], list) and isinstance(namespace["both"], list) and len(namespace["both"]) == 1
    assert len(namespace["answers"]) == 2 and all(isinstance(text, str) for text in namespace["answers"])
    assert [edit.token_ids.shape for edit in namespace["both_edits"]] == [namespace["edited"].token_ids.shape] * 2
    assert namespace["answer_ids"].shape[1] > namespace["inputs"]["input_ids"].shape[1]
    assert namespace["raw"]["mm_token_type_ids"].sum() == namespace["raw"]["image_grid_thw"].prod(-1).sum()
