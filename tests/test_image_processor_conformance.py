"""transformers' own `ImageProcessingTestMixin` (from the installed version's sdist, see `library_test_mixins`) on
`LLaDAUniImageProcessor`."""

import unittest

import numpy as np
import torch

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import LLaDAUniImageProcessor

from library_test_mixins import import_common_tests


image_processing_common = import_common_tests("test_image_processing_common")


class LLaDAUniImageProcessingTester(image_processing_common.ImageProcessingTester):
    def __init__(self, parent, **kwargs):
        # A non-default setting of each kind, so the attribute and round-trip tests see them kept.
        kwargs.setdefault("mode", "understand")
        kwargs.setdefault("understand_max_pixels", 512 * 512)
        kwargs.setdefault("rgba_background", [255, 255, 255])
        kwargs.setdefault("image_mean", [0.5, 0.5, 0.5])
        kwargs.setdefault("image_std", [0.5, 0.5, 0.5])
        super().__init__(parent, **kwargs)

    def _get_image_processing_classes(self):
        # The mixin looks the classes up by the test folder's name in transformers' own mapping; ours is registered
        # with the Auto classes under our model types.
        return {"pil": LLaDAUniImageProcessor}

    def expected_packed_shape(self, images, processor, channels=3):
        """`pixel_values` are packed: every image's patches one after another, `channels * 16 * 16` values each."""
        patches = 0
        for image in images:
            if isinstance(image, np.ndarray):
                height, width = image.shape[:2]
            elif isinstance(image, torch.Tensor):
                height, width = image.shape[1:]
            else:
                width, height = image.size
            patches += processor.get_number_of_image_patches(height, width)
        return patches, channels * processor.patch_size**2


class LLaDAUniImageProcessingConformanceTest(image_processing_common.ImageProcessingTestMixin, unittest.TestCase):
    image_processor_tester_class = LLaDAUniImageProcessingTester
    test_cast_dtype = True

    def _check_packed_calls(self, channels=3, call_kwargs=None, **input_kind):
        tester = self.image_processor_tester
        call_kwargs = call_kwargs or {}
        for image_processing_class in self.image_processing_classes.values():
            processor = image_processing_class(**self.image_processor_dict)
            images = tester.prepare_image_inputs(equal_resolution=False, **input_kind)
            one = processor(images[0], return_tensors="pt", **call_kwargs)
            expected = tester.expected_packed_shape(images[:1], processor, channels)
            self.assertEqual(tuple(one.pixel_values.shape), expected)
            self.assertEqual(one.image_grid_thw.shape, (1, 3))
            batch = processor(images, return_tensors="pt", **call_kwargs)
            expected = tester.expected_packed_shape(images, processor, channels)
            self.assertEqual(tuple(batch.pixel_values.shape), expected)
            self.assertEqual(batch.image_grid_thw.shape, (tester.batch_size, 3))
            self.assertEqual(int(batch.image_grid_thw.prod(-1).sum()), batch.pixel_values.shape[0])

    # The mixin's call tests expect `pixel_values` of shape (batch, channels, height, width); this processor packs every
    # image's patches into one (total_patches, 3 * 16 * 16) tensor for the image tokenizer (as Qwen2-VL and GLM-Image do),
    # so they are checked against the packed shape.
    def test_call_pil(self):
        self._check_packed_calls()

    def test_call_numpy(self):
        self._check_packed_calls(numpify=True)

    def test_call_pytorch(self):
        self._check_packed_calls(torchify=True)

    def test_call_numpy_4_channels(self):
        self.image_processor_tester.num_channels = 4
        four_channels = {
            "do_convert_rgb": False,
            "input_data_format": "channels_last",
            "image_mean": [0.0, 0.0, 0.0, 0.0],
            "image_std": [1.0, 1.0, 1.0, 1.0],
        }
        self._check_packed_calls(channels=4, call_kwargs=four_channels, numpify=True)

    @unittest.skip("Torchvision must not be required (project rule); the PIL backend reproduces the original's pixels.")
    def test_new_models_require_torchvision_backend(self):
        pass


if __name__ == "__main__":
    unittest.main()
