# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Loading a model folder into a page, and serving it (what `llada-uni app` and the Space's `app.py` call)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import gradio as gr

    from .settings import AppSettings


def _quiet_environment():
    # Gradio reports usage and checks for updates over the network unless told not to; a model demo that runs
    # offline (and CI) must not try. An explicit setting by the user wins.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def launch_options() -> dict:
    """The `demo.launch` options every way of serving the app shares: nothing public, no tracebacks in the page,
    nothing that needs Node or reaches out (server-side rendering, the MCP server, monitoring)."""
    from .ui import CSS

    return {"share": False, "show_error": False, "ssr_mode": False, "mcp_server": False, "pwa": False,
            "enable_monitoring": False, "css": CSS, "footer_links": ["api", "settings"]}


def create_app(model: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype | str | None = None, settings: AppSettings | None = None) -> gr.Blocks:
    r"""
    Loads `model` once and builds the page on it (queue configured, not launched).

    Args:
        model: a converted or released LLaDA2.0-Uni folder (default: the bundled tiny random-weight model).
        device: where the parts run.
        dtype: dtype of every part (default: the stored dtypes).
        settings: an [`AppSettings`] (queue size, batch size, control defaults).

    Returns:
        The `gr.Blocks`; `demo.scheduler.engine` is the loaded [`AppEngine`].
    """
    _quiet_environment()
    from .engine import AppEngine
    from .ui import create_demo

    engine = AppEngine.from_pretrained(model, device=device, dtype=dtype)
    return create_demo(engine, settings)


def launch(model: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 7860,
           device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
           settings: AppSettings | None = None, block: bool = True, quiet: bool = False) -> gr.Blocks:
    r"""
    Serves the app on `host:port`.

    Args:
        model, device, dtype, settings: as in [`create_app`].
        host: the address to listen on (`127.0.0.1`: this machine only; `0.0.0.0`: every interface).
        port: the TCP port.
        block: serve until interrupted (Ctrl-C), then shut down; with `False`, return the running app at once
            (close it with `demo.close()` and `demo.scheduler.close()`).
        quiet: do not print the address.

    Returns:
        The `gr.Blocks` (after shutting down when `block`).
    """
    demo = create_app(model, device=device, dtype=dtype, settings=settings)
    try:
        demo.launch(server_name=host, server_port=int(port), prevent_thread_lock=True, quiet=quiet,
                    **launch_options())
        if block:
            demo.block_thread()
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM through the command line) while the server starts: stop as after serving.
        if not block:
            _shutdown(demo)
            raise
    except BaseException:
        _shutdown(demo)
        raise
    if block:
        _shutdown(demo)
    return demo


def _shutdown(demo):
    try:
        demo.close()
    finally:
        demo.scheduler.close()
