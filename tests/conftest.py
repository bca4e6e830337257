import os
import pathlib
import tempfile

import pytest
import torch


FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TINY_RELEASED = FIXTURES / "tiny-llada2-uni"
EXPECTED = FIXTURES / "expected"
IMAGES = FIXTURES / "images"
REAL_FILES = FIXTURES / "real-checkpoint-files"

# Nothing may reach a hub: every test runs offline with a private cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="llada-uni-hf-home-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_released_dir():
    return TINY_RELEASED


@pytest.fixture(scope="session")
def expected_dir():
    return EXPECTED


@pytest.fixture(scope="session")
def images_dir():
    return IMAGES


@pytest.fixture(scope="module")
def single_thread():
    """Tiny-model matmuls gain nothing from threads; on a shared 2-core machine extra threads only add contention.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
