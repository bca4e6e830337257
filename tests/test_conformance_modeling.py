"""transformers' own common model and config tests (`ModelTesterMixin`, `ConfigTester` from the installed version's
sdist, see `library_test_mixins`) run on the LLaDA2.0-Uni backbone, as transformers runs them on its own models.

Tests that cannot apply to a masked-diffusion MoE model are skipped below, each with the reason.
"""

import contextlib
import unittest
import warnings
from unittest import mock

import pytest
import torch

from library_test_mixins import import_common_tests
from transformers_llada_uni import (
    LLaDAUniConfig,
    LLaDAUniForConditionalGeneration,
    LLaDAUniModel,
    LLaDAUniPreTrainedModel,
)


pytestmark = pytest.mark.usefixtures("single_thread")

_modeling_common = import_common_tests("test_modeling_common")
_configuration_common = import_common_tests("test_configuration_common")
ModelTesterMixin = _modeling_common.ModelTesterMixin
ConfigTester = _configuration_common.ConfigTester
ids_tensor = _modeling_common.ids_tensor
random_attention_mask = _modeling_common.random_attention_mask


class LLaDAUniModelTester:
    """A tiny configuration and inputs, in the shape transformers' model testers give them."""

    def __init__(
        self,
        parent,
        batch_size=2,
        seq_length=7,
        is_training=True,
        use_input_mask=True,
        use_labels=True,
        vocab_size=99,
        image_token_offset=83,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        num_experts=8,
        num_experts_per_tok=2,
        n_group=2,
        topk_group=1,
        # widths a multiple of 8: the default `grouped_mm` experts kernel needs 16-byte strides in half precision
        moe_intermediate_size=16,
        max_position_embeddings=512,
        block_length=4,
        pad_token_id=0,
        eos_token_id=1,
        mask_token_id=2,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.use_input_mask = use_input_mask
        self.use_labels = use_labels
        self.vocab_size = vocab_size
        self.image_token_offset = image_token_offset
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.n_group = n_group
        self.topk_group = topk_group
        self.moe_intermediate_size = moe_intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.block_length = block_length
        self.pad_token_id = pad_token_id
        self.eos_token_id = eos_token_id
        self.mask_token_id = mask_token_id

    def get_config(self):
        return LLaDAUniConfig(
            vocab_size=self.vocab_size,
            image_token_offset=self.image_token_offset,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            num_experts=self.num_experts,
            num_experts_per_tok=self.num_experts_per_tok,
            n_group=self.n_group,
            topk_group=self.topk_group,
            moe_intermediate_size=self.moe_intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            block_length=self.block_length,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
            mask_token_id=self.mask_token_id,
        )

    def prepare_config_and_inputs(self):
        # Text ids only (below the image codes), never the mask token: an ordinary sequence.
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.image_token_offset - 3) + 3
        input_mask = random_attention_mask([self.batch_size, self.seq_length]) if self.use_input_mask else None
        labels = None
        if self.use_labels:
            labels = self.noise(input_ids)
        return self.get_config(), input_ids, input_mask, labels

    def noise(self, input_ids):
        """Masked-diffusion training targets for `input_ids` (in place): every other token becomes the mask token,
        and the labels hold the clean token there and -100 elsewhere."""
        labels = torch.full_like(input_ids, -100)
        labels[:, ::2] = input_ids[:, ::2]
        input_ids[:, ::2] = self.mask_token_id
        return labels

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, input_mask, _ = self.prepare_config_and_inputs()
        inputs_dict = {"input_ids": input_ids}
        if input_mask is not None:
            inputs_dict["attention_mask"] = input_mask
        return config, inputs_dict


@contextlib.contextmanager
def _missing_weights_allowed():
    """`from_pretrained` as plain transformers does it: missing weights are initialised (and reported in the loading
    info) instead of raising. Ours raises by default (`allow_missing_weights=False`, tested in test_backbone), which
    the common tests that load incomplete checkpoints on purpose do not expect."""
    original = LLaDAUniPreTrainedModel.from_pretrained.__func__

    def lenient(cls, *args, **kwargs):
        kwargs.setdefault("allow_missing_weights", True)
        return original(cls, *args, **kwargs)

    with mock.patch.object(LLaDAUniPreTrainedModel, "from_pretrained", classmethod(lenient)):
        yield


class LLaDAUniModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LLaDAUniModel, LLaDAUniForConditionalGeneration)
    # `generate` is block diffusion (its own tests in test_generation*.py), not GenerationMixin's autoregressive loop
    # that GenerationTesterMixin tests.
    all_generative_model_classes = ()

    def setUp(self):
        # The common tests recognise a base model (no loss; the one whose RoPE they test) by its name in
        # transformers' static `MODEL_MAPPING_NAMES`, which lists only transformers' own models; ours is registered
        # with `AutoModel` at run time. Give the tests a copy of that table that names it.
        names = {**_modeling_common.MODEL_MAPPING_NAMES, LLaDAUniConfig.model_type: LLaDAUniModel.__name__}
        patcher = mock.patch.object(_modeling_common, "MODEL_MAPPING_NAMES", names)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.model_tester = LLaDAUniModelTester(self)
        self.config_tester = ConfigTester(
            self, config_class=LLaDAUniConfig, hidden_size=32, vocab_size=99, image_token_offset=83,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=37,
            num_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1, moe_intermediate_size=16,
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is LLaDAUniForConditionalGeneration:
            inputs_dict["labels"] = self.model_tester.noise(inputs_dict["input_ids"])
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_bc_cache_name_forward(self):
        # It checks that `past_key_values=` warns; the project's pytest settings ignore FutureWarning.
        with warnings.catch_warnings():
            warnings.simplefilter("always", FutureWarning)
            super().test_bc_cache_name_forward()

    def test_base_model_prefix_loads_base_weights(self):
        with _missing_weights_allowed():  # a head loaded from a base checkpoint lacks `lm_head`
            super().test_base_model_prefix_loads_base_weights()

    def test_can_init_all_missing_weights(self):
        with _missing_weights_allowed():
            super().test_can_init_all_missing_weights()

    def test_correct_missing_keys(self):
        with _missing_weights_allowed():
            super().test_correct_missing_keys()

    def test_model_weights_reload_no_missing_tied_weights(self):
        with _missing_weights_allowed():
            super().test_model_weights_reload_no_missing_tied_weights()

    def test_model_forward_and_loss(self):
        config, input_ids, input_mask, labels = self.model_tester.prepare_config_and_inputs()
        model = LLaDAUniForConditionalGeneration(config).eval()
        with torch.no_grad():
            out = model(input_ids, attention_mask=input_mask, labels=labels)
        self.assertEqual(out.logits.shape, (self.model_tester.batch_size, self.model_tester.seq_length, 99))
        self.assertTrue(torch.isfinite(out.loss))
