# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""LLaDA2.0-Uni for diffusers: the image decoder and the end-to-end pipelines."""

from .modeling_sigvq import SigVQEmbedding
from .pipeline_llada_uni import (
    LLaDAUniImageEditPipeline,
    LLaDAUniImagePipelineOutput,
    LLaDAUniTextToImagePipeline,
    LLaDAUniUnderstandingPipeline,
    LLaDAUniUnderstandingPipelineOutput,
)
from .pipeline_llada_uni_interleaved import LLaDAUniInterleavedPipeline, LLaDAUniInterleavedPipelineOutput
from .pipeline_llada_uni_decoder import (
    LLaDAUniDecoderPipeline,
    check_grid_size,
    convert_released_decoder,
    load_released_transformer,
    make_released_scheduler,
    prepare_image_codes,
)
from .scheduling_llada_uni import LLaDAUniFlowMatchScheduler


__all__ = [
    "SigVQEmbedding",
    "LLaDAUniFlowMatchScheduler",
    "LLaDAUniDecoderPipeline",
    "LLaDAUniTextToImagePipeline",
    "LLaDAUniImageEditPipeline",
    "LLaDAUniUnderstandingPipeline",
    "LLaDAUniInterleavedPipeline",
    "LLaDAUniInterleavedPipelineOutput",
    "LLaDAUniImagePipelineOutput",
    "LLaDAUniUnderstandingPipelineOutput",
    "check_grid_size",
    "prepare_image_codes",
    "convert_released_decoder",
    "load_released_transformer",
    "make_released_scheduler",
]
