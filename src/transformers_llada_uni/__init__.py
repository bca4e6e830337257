# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""LLaDA2.0-Uni for transformers. Importing this package registers every class with the Auto classes."""

from .configuration_llada_uni import LLaDA2MoeConfig, LLaDAUniConfig
from .conversation_llada_uni import (
    LLaDAUniChatHistory,
    LLaDAUniInterleavedOutput,
    LLaDAUniPrefixCache,
    LLaDAUniStepInfo,
)
from .generation_llada_uni import (
    LLaDAUniBlockScheduler,
    LLaDAUniBlockSchedulerOutput,
    LLaDAUniGenerateOutput,
    LLaDAUniGenerationConfig,
    LLaDAUniImageGenerationOutput,
    LLaDAUniUnderstandingOutput,
)
from .modeling_llada_uni import (
    LLaDA2MoeForConditionalGeneration,
    LLaDA2MoeModel,
    LLaDAUniForConditionalGeneration,
    LLaDAUniModel,
    LLaDAUniPreTrainedModel,
)
from .configuration_llada_uni_image_tokenizer import LLaDAUniImageVQConfig
from .image_processing_llada_uni import LLaDAUniImageProcessor
from .modeling_llada_uni_image_tokenizer import (
    LLaDAUniImageVQModel,
    LLaDAUniImageVQOutput,
    LLaDAUniImageVQPreTrainedModel,
)
from .processing_llada_uni import LLaDAUniProcessor
from .registration import register_auto_classes
from .training_data_llada_uni import (
    DataCollatorForMaskedDiffusion,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionDataset,
    encode_training_dataset,
    load_training_dataset,
)
from .training_objective_llada_uni import MaskedDiffusionConfig, masked_diffusion_loss
from .training_peft_llada_uni import (
    get_llada_uni_peft_model,
    llada_uni_lora_config,
    load_llada_uni_4bit,
    prepare_llada_uni_full_finetuning,
    quantize_routed_experts,
)


register_auto_classes()


def __getattr__(name):
    # The Trainer stack is a second of imports: loaded when the trainer is asked for, not with the package.
    if name == "LLaDAUniMaskedDiffusionTrainer":
        from .trainer_llada_uni import LLaDAUniMaskedDiffusionTrainer

        return LLaDAUniMaskedDiffusionTrainer
    # The image tokenizer's earlier names (`LLaDAUniImageTokenizer*`): the submodules warn and return the `...VQ...`
    # class.
    if name == "LLaDAUniImageTokenizerConfig":
        from . import configuration_llada_uni_image_tokenizer

        return getattr(configuration_llada_uni_image_tokenizer, name)
    if name in ("LLaDAUniImageTokenizerModel", "LLaDAUniImageTokenizerPreTrainedModel", "LLaDAUniImageTokenizerOutput"):
        from . import modeling_llada_uni_image_tokenizer

        return getattr(modeling_llada_uni_image_tokenizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LLaDAUniChatHistory",
    "LLaDAUniInterleavedOutput",
    "LLaDAUniPrefixCache",
    "LLaDAUniStepInfo",
    "LLaDAUniConfig",
    "LLaDA2MoeConfig",
    "LLaDAUniPreTrainedModel",
    "LLaDAUniModel",
    "LLaDAUniForConditionalGeneration",
    "LLaDAUniGenerationConfig",
    "LLaDAUniBlockScheduler",
    "LLaDAUniBlockSchedulerOutput",
    "LLaDAUniGenerateOutput",
    "LLaDAUniImageGenerationOutput",
    "LLaDAUniUnderstandingOutput",
    "LLaDA2MoeModel",
    "LLaDA2MoeForConditionalGeneration",
    "LLaDAUniImageVQConfig",
    "LLaDAUniImageVQPreTrainedModel",
    "LLaDAUniImageVQModel",
    "LLaDAUniImageVQOutput",
    "LLaDAUniImageProcessor",
    "LLaDAUniProcessor",
    "MaskedDiffusionConfig",
    "MaskedDiffusionDataset",
    "DataCollatorForMaskedDiffusion",
    "LLaDAUniTrainingDataEncoder",
    "encode_training_dataset",
    "load_training_dataset",
    "masked_diffusion_loss",
    "llada_uni_lora_config",
    "get_llada_uni_peft_model",
    "load_llada_uni_4bit",
    "quantize_routed_experts",
    "prepare_llada_uni_full_finetuning",
    "LLaDAUniMaskedDiffusionTrainer",
]
