# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The web app as a Hugging Face Space (or `python app.py` in this folder).

A Space runs this file with Gradio's own server settings (`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`). Environment:
`LLADA_UNI_MODEL`, a converted or released LLaDA2.0-Uni folder (default: the tiny random-weight demo model that ships
in the package); `LLADA_UNI_DEVICE` (default: cuda when present, else cpu); `LLADA_UNI_DTYPE` (`auto`, `bfloat16`,
`float16`, `float32`; default: the stored dtypes).
"""

import os
import sys
from pathlib import Path


# Run from a checkout without installing: the packages live under src/.
_SRC = Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import torch  # noqa: E402

from llada_uni_app import create_app  # noqa: E402
from llada_uni_app.launcher import launch_options  # noqa: E402
from llada_uni_cli.common import dtype_from_name  # noqa: E402


demo = create_app(
    os.environ.get("LLADA_UNI_MODEL") or None,
    device=os.environ.get("LLADA_UNI_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"),
    dtype=dtype_from_name(os.environ.get("LLADA_UNI_DTYPE") or "auto"),
)

if __name__ == "__main__":
    demo.launch(**launch_options())
