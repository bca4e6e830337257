#!/usr/bin/env python
# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Convert a released LLaDA2.0-Uni folder into the converted layout: `python conversion/convert_llada_uni.py SRC DST`.

The same as `llada-uni convert SRC DST`. The implementation lives in the installed packages (`llada_uni_conversion`;
the options in `llada_uni_cli.convert`) so that the console script works without this repository; run `--help` for
the options and the converted layout.
"""

import sys

from llada_uni_cli.convert import main


if __name__ == "__main__":
    sys.exit(main())
