# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Registration with the transformers Auto classes.

Neither transformers nor diffusers discovers plugins, so `import transformers_llada_uni` calls this. A model type
that is already registered (by transformers itself, or by someone else) is left alone.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText
from transformers.models.auto.configuration_auto import CONFIG_MAPPING


def _register(config_class, model_classes):
    model_type = config_class.model_type
    if model_type in CONFIG_MAPPING and CONFIG_MAPPING[model_type] is not config_class:
        # Someone else owns this model type: do not clobber it.
        return False
    if model_type not in CONFIG_MAPPING:
        AutoConfig.register(model_type, config_class)
    for auto_class, model_class in model_classes:
        if config_class not in auto_class._model_mapping:
            auto_class.register(config_class, model_class)
    return True


def _register_multimodal_classes():
    """The image tokenizer (AutoConfig / AutoModel under its own model type), its image processor and the processor."""
    from transformers import AutoImageProcessor, AutoProcessor
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
    from transformers.models.auto.video_processing_auto import VIDEO_PROCESSOR_MAPPING

    from .configuration_llada_uni import LLaDA2MoeConfig, LLaDAUniConfig
    from .configuration_llada_uni_image_tokenizer import LLaDAUniImageVQConfig
    from .image_processing_llada_uni import LLaDAUniImageProcessor
    from .modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel
    from .processing_llada_uni import LLaDAUniProcessor

    _register(LLaDAUniImageVQConfig, [(AutoModel, LLaDAUniImageVQModel)])
    for config_class in (LLaDAUniImageVQConfig, LLaDAUniConfig, LLaDA2MoeConfig):
        if config_class not in IMAGE_PROCESSOR_MAPPING:
            AutoImageProcessor.register(config_class, image_processor_classes={"pil": LLaDAUniImageProcessor})
    for config_class in (LLaDAUniConfig, LLaDA2MoeConfig):
        if config_class not in PROCESSOR_MAPPING:
            AutoProcessor.register(config_class, LLaDAUniProcessor)
        if config_class not in VIDEO_PROCESSOR_MAPPING:
            # No video processor. Said explicitly because pipelines look for one, and AutoVideoProcessor would guess
            # a remote `LLaDAUniVideoProcessor` from the image processor's `auto_map` and ask whether to run it.
            # (The mapping directly: the `AutoVideoProcessor` class needs torchvision, which this project does not.)
            VIDEO_PROCESSOR_MAPPING.register(config_class, {})
    # `save_pretrained` writes `auto_map` and copies the code files (remote code where the package is absent).
    LLaDAUniImageVQConfig.register_for_auto_class()
    LLaDAUniImageVQModel.register_for_auto_class("AutoModel")
    LLaDAUniImageProcessor.register_for_auto_class("AutoImageProcessor")
    LLaDAUniProcessor.register_for_auto_class("AutoProcessor")


def register_auto_classes() -> None:
    from .configuration_llada_uni import LLaDA2MoeConfig, LLaDAUniConfig
    from .modeling_llada_uni import (
        LLaDA2MoeForConditionalGeneration,
        LLaDA2MoeModel,
        LLaDAUniForConditionalGeneration,
        LLaDAUniModel,
    )

    # The language model reads pictures too (processor outputs), so `pipeline("image-text-to-text")` takes it.
    _register(
        LLaDAUniConfig,
        [(AutoModel, LLaDAUniModel), (AutoModelForCausalLM, LLaDAUniForConditionalGeneration),
         (AutoModelForImageTextToText, LLaDAUniForConditionalGeneration)],
    )
    _register(
        LLaDA2MoeConfig,
        [(AutoModel, LLaDA2MoeModel), (AutoModelForCausalLM, LLaDA2MoeForConditionalGeneration),
         (AutoModelForImageTextToText, LLaDA2MoeForConditionalGeneration)],
    )
    # `save_pretrained` writes `auto_map` and copies the code files, so converted checkpoints load with
    # `trust_remote_code=True` where this package is not installed.
    for config_class, base_class, lm_class in (
        (LLaDAUniConfig, LLaDAUniModel, LLaDAUniForConditionalGeneration),
        (LLaDA2MoeConfig, LLaDA2MoeModel, LLaDA2MoeForConditionalGeneration),
    ):
        config_class.register_for_auto_class()
        base_class.register_for_auto_class("AutoModel")
        lm_class.register_for_auto_class("AutoModelForCausalLM")
    _register_multimodal_classes()
