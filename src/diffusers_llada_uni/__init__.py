# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""LLaDA2.0-Uni for diffusers: the image decoder and the end-to-end pipelines."""

import importlib
import warnings

# Before diffusers' quantizers import bitsandbytes (when installed), which would print a notice about an optional
# CPU kernel on every import.
from transformers_llada_uni.training_peft_llada_uni import silence_bitsandbytes_kernel_notice


silence_bitsandbytes_kernel_notice()

from .modeling_sigvq import SigVQEmbedding
from .pipeline_llada_uni import (
    LLaDAUniImageEditPipeline,
    LLaDAUniImagePipelineOutput,
    LLaDAUniTextToImagePipeline,
    LLaDAUniUnderstandingPipeline,
    LLaDAUniUnderstandingPipelineOutput,
)
from .pipeline_llada_uni_decoder import LLaDAUniDecoderPipeline
from .pipeline_llada_uni_inpaint import LLaDAUniInpaintPipeline, LLaDAUniInpaintPipelineOutput
from .pipeline_llada_uni_interleaved import LLaDAUniInterleavedPipeline, LLaDAUniInterleavedPipelineOutput
from .scheduling_llada_uni import LLaDAUniFlowMatchScheduler


__all__ = [
    "SigVQEmbedding",
    "LLaDAUniFlowMatchScheduler",
    "LLaDAUniDecoderPipeline",
    "LLaDAUniTextToImagePipeline",
    "LLaDAUniImageEditPipeline",
    "LLaDAUniUnderstandingPipeline",
    "LLaDAUniInpaintPipeline",
    "LLaDAUniInpaintPipelineOutput",
    "LLaDAUniInterleavedPipeline",
    "LLaDAUniInterleavedPipelineOutput",
    "LLaDAUniImagePipelineOutput",
    "LLaDAUniUnderstandingPipelineOutput",
]

# Helpers that used to be exported as if they were API: name -> the module that holds them now.
_DEPRECATED = {
    "check_grid_size": ".pipeline_llada_uni_decoder",
    "prepare_image_codes": ".pipeline_llada_uni_decoder",
    "convert_released_decoder": ".pipeline_llada_uni_decoder",
    "load_released_transformer": ".pipeline_llada_uni_decoder",
    "make_released_scheduler": ".pipeline_llada_uni_decoder",
}


def __getattr__(name):
    if name in _DEPRECATED:
        warnings.warn(
            f"`diffusers_llada_uni.{name}` is an internal helper and will stop being importable from the package; "
            "use the pipelines (`LLaDAUniDecoderPipeline.from_released`, `llada-uni convert`) instead.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_DEPRECATED[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
