"""transformers' own `ProcessorTesterMixin` (from the installed version's sdist, see `library_test_mixins`) on
`LLaDAUniProcessor`, loaded from the tiny released checkpoint."""

import unittest

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import LLaDAUniProcessor

from conftest import TINY_RELEASED
from library_test_mixins import import_common_tests


processing_common = import_common_tests("test_processing_common")


class LLaDAUniProcessorConformanceTest(processing_common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = LLaDAUniProcessor
    model_id = str(TINY_RELEASED)

    # The mixin's 400 x 30 px picture is 4 x 30 image codes, so its image block alone is 125 ids: the mixin's defaults
    # (117, 112, 76) would truncate it. These leave room for the block and still pad the text.
    images_text_kwargs_max_length = 200
    images_text_kwargs_override_max_length = 190
    images_unstructured_max_length = 180


if __name__ == "__main__":
    unittest.main()
