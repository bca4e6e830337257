"""Fixtures shared by the generation tests: the tiny released checkpoint, its tokenizer, the recordings.

A test module imports the fixtures it uses (`from generation_testing import model, tokenizer`); pytest picks them up
from the module's namespace.
"""

import contextlib
import json

import pytest
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)

from conftest import EXPECTED, TINY_RELEASED


def expected(name: str) -> dict:
    """The recording `tests/fixtures/expected/{name}.json`."""
    return json.loads((EXPECTED / f"{name}.json").read_text())


@contextlib.contextmanager
def progress_bars_off():
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


@pytest.fixture(scope="module")
def quiet():
    """No progress bars for a module (`pytestmark = pytest.mark.usefixtures("quiet")`)."""
    with progress_bars_off():
        yield


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(TINY_RELEASED).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return PreTrainedTokenizerFast.from_pretrained(TINY_RELEASED)


def force(ids, at):
    """A logit rule that makes the output hold `ids` from position `at`."""

    def rule(logits, positions):
        logits = logits.clone()
        for offset, token in enumerate(ids):
            hit = positions == at + offset
            logits[hit] = float("-inf")
            logits[..., token][hit] = 0.0
        return logits

    return rule
