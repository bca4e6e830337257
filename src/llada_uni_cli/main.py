# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni COMMAND ...`: one entry point, one module per subcommand (each has `add_parser` and `run`)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from .common import describe


# Subcommand modules in the order `--help` lists them. `train` belongs to the training work and is optional here.
_COMMANDS = ("demo", "t2i", "understand", "edit", "inpaint", "outpaint", "chat", "decode", "convert", "app")
_OPTIONAL_COMMANDS = ("train",)


def _load_commands():
    modules = {}
    for name in _COMMANDS:
        modules[name] = importlib.import_module(f"llada_uni_cli.{name}")
    for name in _OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(f"llada_uni_cli.{name}")
        except ImportError as err:
            # Only a missing module is tolerated; a broken one must surface.
            if err.name != f"llada_uni_cli.{name}":
                raise
            continue
        modules[name] = module
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("llada-uni")
    except PackageNotFoundError:
        package_version = "unknown"
    parser = argparse.ArgumentParser(
        prog="llada-uni",
        description="LLaDA2.0-Uni: text-to-image, image understanding, editing and inpainting with one masked-diffusion "
                    "model.",
        epilog="Run `llada-uni COMMAND --help` for the options of a command. `llada-uni demo` needs no download.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = _load_commands()
    for module in modules.values():
        module.add_parser(subparsers)
    return parser, modules


def _raise_keyboard_interrupt(signum, frame):
    # SIGTERM takes the same clean-up path as Ctrl-C (temporary folders are removed on the way out).
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        result = modules[args.command].run(args)
    except KeyboardInterrupt:
        print(f"llada-uni {args.command}: interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # any failure, from any library: one line and a non-zero exit, never a traceback
        if os.environ.get("LLADA_UNI_DEBUG"):
            traceback.print_exc()
        print(f"llada-uni {args.command}: error: {describe(err)}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
