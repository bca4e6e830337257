"""LLaDAUniImageProcessor: the original's geometry and pixels, input kinds and modes, errors, round trips,
postprocessing."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.numpy import load_file
from transformers import AutoImageProcessor

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import LLaDAUniImageProcessor
from transformers_llada_uni.image_processing_llada_uni import closest_crop_size, edit_crop_sizes, smart_resize

from conftest import EXPECTED, IMAGES, TINY_RELEASED


PICTURES = ["landscape_150x100", "portrait_90x200", "square_64x64_rgba"]


def _case(mode, name):
    return json.loads((EXPECTED / f"image_tokens_{mode}_{name}.json").read_text())


@pytest.fixture(scope="module")
def processor():
    return LLaDAUniImageProcessor()


def _unpatch(pixel_values, rows, cols, patch=16):
    """Inverse of the raster patch layout: (rows*cols, 3*p*p) -> (H, W, 3)."""
    grid = pixel_values.reshape(rows, cols, 3, patch, patch).transpose(2, 0, 3, 1, 4)
    return grid.reshape(3, rows * patch, cols * patch).transpose(1, 2, 0)


def _sizes(out, patch=16):
    """Processed `(height, width)` of each image, in pixels: its patch grid times the patch size."""
    return [(rows * patch, cols * patch) for _, rows, cols in np.asarray(out["image_grid_thw"]).tolist()]


def _to_uint8(pixel_values, rows, cols):
    return np.round((_unpatch(pixel_values, rows, cols) * 0.5 + 0.5) * 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["understand", "edit"])
@pytest.mark.parametrize("name", PICTURES)
def test_recorded_geometry_and_pixels(processor, mode, name):
    case = _case(mode, name)
    out = processor(IMAGES / f"{name}.png", mode=mode)
    height, width = _sizes(out)[0]
    assert [width, height] == case["processed_size"]
    assert out["image_grid_thw"].tolist() == [case["grid_thw"]]
    assert out["pixel_values"].dtype == np.float32
    assert out["pixel_values"].shape == (np.prod(case["grid_thw"]), 768)
    if mode == "understand":
        recorded = load_file(EXPECTED / f"image_tokens_understand_{name}.safetensors")["pixel_values"]
        np.testing.assert_allclose(out["pixel_values"], recorded, rtol=0, atol=1e-6)
    assert processor.get_processed_size(*PIL.Image.open(IMAGES / f"{name}.png").size, mode=mode) == tuple(
        case["processed_size"]
    )


def test_batch_concatenates_images_in_order(processor):
    paths = [IMAGES / f"{name}.png" for name in PICTURES]
    batch = processor(paths, return_tensors="pt")
    assert isinstance(batch["pixel_values"], torch.Tensor)
    singles = [processor(path)["pixel_values"] for path in paths]
    np.testing.assert_array_equal(batch["pixel_values"].numpy(), np.concatenate(singles))
    assert batch["image_grid_thw"].tolist() == [_case("understand", n)["grid_thw"] for n in PICTURES]


def test_patches_are_raster_order_and_channel_first(processor):
    # 4 x 8 patches of 32 px in understanding -> 8 x 16 patches of 16 px, each filled with a colour from its index
    rows, cols = 8, 16
    colours = np.arange(rows * cols, dtype=np.uint8).reshape(rows, cols)
    picture = np.repeat(np.repeat(colours, 16, axis=0), 16, axis=1)
    picture = np.stack([picture, 255 - picture, np.full_like(picture, 7)], axis=-1)
    out = processor(picture, mode="understand")
    assert out["image_grid_thw"].tolist() == [[1, rows, cols]]
    patches = out["pixel_values"].reshape(rows * cols, 3, 16, 16)
    expected_red = (colours.flatten().astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(patches[:, 0, 0, 0], expected_red, atol=1e-6)
    np.testing.assert_allclose(patches[:, 1, 5, 9], (1 - colours.flatten() / 255 - 0.5) / 0.5, atol=1e-6)


def test_smart_resize_budget_and_factor():
    for height, width in [(1, 1), (10, 1000), (100, 150), (333, 777), (1080, 1920), (4000, 3000), (20000, 200)]:
        h, w = smart_resize(height, width, 32, 128 * 128, 800 * 800)
        assert h % 32 == 0 and w % 32 == 0
        assert 128 * 128 <= h * w <= 800 * 800, (height, width, h, w)


def test_very_large_image_is_resized_to_the_budget(processor):
    big = PIL.Image.new("RGB", (6000, 4000), (10, 200, 30))
    out = processor(big)
    height, width = _sizes(out)[0]
    assert height * width <= processor.understand_max_pixels
    assert out["pixel_values"].shape[0] == height * width // 256
    # several images in one prompt get the smaller per-image budget
    nested = processor([[big, big]])
    for height, width in _sizes(nested):
        assert height * width <= processor.understand_max_pixels_multi
    edit = processor(big, mode="edit")
    height, width = _sizes(edit)[0]
    assert height * width <= processor.edit_image_size**2


def test_extreme_aspect_is_refused_in_understanding(processor):
    with pytest.raises(ValueError, match="aspect ratio"):
        processor(np.zeros((2, 1000, 3), dtype=np.uint8))


def test_edit_crop_sizes():
    sizes = edit_crop_sizes(512, 32, 4.0)
    assert (512, 512) in sizes
    for w, h in sizes:
        assert w % 32 == 0 and h % 32 == 0
        assert (w // 32) * (h // 32) <= 256
        assert max(w, h) / min(w, h) <= 4.0
    assert closest_crop_size(150, 100, sizes) == (608, 416)
    assert closest_crop_size(1000, 1000, sizes) == (512, 512)


def test_edit_crop_keeps_pixels_unscaled(processor):
    rng = np.random.default_rng(0)
    # larger than its crop: a centred window of the original pixels
    large = rng.integers(0, 256, (900, 1300, 3), dtype=np.uint8)
    out = processor(large, mode="edit")
    height, width = _sizes(out)[0]
    top, left = (900 - height) // 2, (1300 - width) // 2
    np.testing.assert_array_equal(
        _to_uint8(out["pixel_values"], height // 16, width // 16), large[top : top + height, left : left + width]
    )
    # smaller than its crop: the picture at the top-left corner, black elsewhere (the original's behaviour)
    small = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    out = processor(small, mode="edit")
    height, width = _sizes(out)[0]
    canvas = _to_uint8(out["pixel_values"], height // 16, width // 16)
    np.testing.assert_array_equal(canvas[:100, :150], small)
    assert canvas[100:].max() == 0 and canvas[:, 150:].max() == 0


def test_edit_resize_crop_alternative(processor):
    small = PIL.Image.open(IMAGES / "landscape_150x100.png")
    original = processor(small, mode="edit")
    resized = processor(small, mode="edit_resize_crop")
    assert resized["image_grid_thw"].tolist() == original["image_grid_thw"].tolist()
    height, width = _sizes(resized)[0]
    canvas = _to_uint8(resized["pixel_values"], height // 16, width // 16)
    # the whole canvas is picture: no black fill
    assert canvas[-16:, -16:].max() > 0
    # the window the crop keeps of the whole picture resized to cover the crop (PIL's filter bounds round a little
    # differently when only the window is resampled: one grey level at most)
    scale = max(width / 150, height / 100)
    expected = small.convert("RGB").resize((round(150 * scale), round(100 * scale)), PIL.Image.BICUBIC)
    top, left = (expected.height - height) // 2, (expected.width - width) // 2
    window = np.asarray(expected)[top : top + height, left : left + width].astype(np.int16)
    assert np.abs(canvas.astype(np.int16) - window).max() <= 1


@pytest.fixture(scope="module")
def peak_memory_growth(tmp_path_factory):
    """Each elongated picture through each mode, in a child of one fresh interpreter (one import for all): the growth
    of the child's peak resident memory, and the error if it raised. The child's data segment is capped 1 GiB above
    its size at start, so a regression fails with MemoryError instead of swamping the machine."""
    import json
    import subprocess
    import sys
    import textwrap

    # A 476-byte PNG of 100000 x 4 pixels once took 7 GB in `edit_resize_crop`: the whole picture was resized to
    # cover the crop before cropping.
    strip = tmp_path_factory.mktemp("elongated") / "strip.png"
    PIL.Image.new("RGB", (100_000, 4), (200, 30, 30)).save(strip)
    assert strip.stat().st_size < 2_000
    script = textwrap.dedent(
        """
        import json, os, resource, sys
        import numpy as np, PIL.Image
        from transformers_llada_uni import LLaDAUniImageProcessor

        processor = LLaDAUniImageProcessor()
        pictures = {
            "strip": lambda: PIL.Image.open(sys.argv[1]),
            # 20000 x 100 px, aspect 200 (accepted): covering the 1024 x 256 crop takes a 51200 x 256 picture (39 MB)
            "long": lambda: PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 20000, 3), np.uint8)),
        }
        for name, make in pictures.items():
            for mode in ("understand", "edit", "edit_resize_crop"):
                read, write = os.pipe()
                if os.fork() == 0:
                    picture = make()
                    with open("/proc/self/status") as status:
                        data_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
                    resource.setrlimit(resource.RLIMIT_DATA, ((data_kb + 1024 * 1024) * 1024, resource.RLIM_INFINITY))
                    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    result = {"error": None}
                    try:
                        result["grid"] = processor(picture, mode=mode)["image_grid_thw"].tolist()
                    except (ValueError, MemoryError) as error:
                        result["error"] = f"{type(error).__name__}: {error}"
                    result["growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
                    os.write(write, json.dumps(result).encode())
                    os._exit(0)
                os.close(write)
                with os.fdopen(read) as pipe:
                    print(json.dumps({"picture": name, "mode": mode, **json.loads(pipe.read())}))
                os.wait()
        """
    )
    run = subprocess.run([sys.executable, "-c", script, str(strip)], capture_output=True, text=True, check=True)
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 6, run.stdout + run.stderr
    return {(r["picture"], r["mode"]): r for r in results}


@pytest.mark.parametrize("mode", ["understand", "edit", "edit_resize_crop"])
def test_absurd_aspect_ratios_are_refused_in_every_mode_without_allocating(peak_memory_growth, mode):
    result = peak_memory_growth["strip", mode]
    assert result["error"].startswith("ValueError: A 100000 x 4 picture has aspect ratio 25000.0"), result
    assert f"mode {mode!r}" in result["error"] and "max_aspect_ratio" in result["error"]
    assert result["growth_mb"] < 50, result


def test_edit_resize_crop_resamples_only_the_window(peak_memory_growth):
    result = peak_memory_growth["long", "edit_resize_crop"]
    assert result["error"] is None and result["grid"] == [[1, 16, 64]], result
    assert result["growth_mb"] < 20, result


def test_rgba_alpha_dropped_by_default_or_composited_on_white():
    picture = PIL.Image.open(IMAGES / "square_64x64_rgba.png")
    alpha = np.asarray(picture)[..., 3]
    transparent_rows = np.where((alpha == 0).all(axis=1))[0]
    assert len(transparent_rows) > 0
    plain = LLaDAUniImageProcessor()(picture, mode="edit")
    np.testing.assert_array_equal(
        _to_uint8(plain["pixel_values"], 32, 32)[:64, :64], np.asarray(picture.convert("RGB"))
    )
    white = LLaDAUniImageProcessor(rgba_background=[255, 255, 255])(picture, mode="edit")
    canvas = _to_uint8(white["pixel_values"], 32, 32)
    assert (canvas[transparent_rows][:, :64] == 255).all()
    # a per-call override works too
    also_white = LLaDAUniImageProcessor()(picture, mode="edit", rgba_background=(255, 255, 255))
    np.testing.assert_array_equal(also_white["pixel_values"], white["pixel_values"])


@pytest.mark.parametrize("mode_name", ["L", "P", "CMYK", "LA", "I;16", "1", "RGBA"])
def test_image_modes_are_converted(processor, mode_name):
    base = PIL.Image.open(IMAGES / "landscape_150x100.png").convert("RGB")
    if mode_name == "I;16":
        picture = PIL.Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
        assert picture.mode == "I;16"
    else:
        picture = base.convert(mode_name)
    out = processor(picture)
    assert out["image_grid_thw"].tolist() == [[1, 8, 12]]
    if mode_name in ("L", "I;16", "1", "LA"):
        patches = out["pixel_values"].reshape(-1, 3, 256)
        np.testing.assert_array_equal(patches[:, 0], patches[:, 1])
    if mode_name == "I;16":
        np.testing.assert_allclose(out["pixel_values"], processor(base.convert("L"))["pixel_values"], atol=1e-6)


def test_numpy_torch_and_path_inputs_agree(processor):
    path = IMAGES / "landscape_150x100.png"
    reference = processor(str(path))["pixel_values"]
    array = np.asarray(PIL.Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(processor(path)["pixel_values"], reference)
    np.testing.assert_array_equal(processor(array)["pixel_values"], reference)
    np.testing.assert_array_equal(processor(array.transpose(2, 0, 1))["pixel_values"], reference)
    np.testing.assert_array_equal(processor(array.astype(np.float32) / 255)["pixel_values"], reference)
    np.testing.assert_array_equal(processor(torch.from_numpy(array.copy()))["pixel_values"], reference)
    gray = processor(array[..., 0])
    assert gray["image_grid_thw"].tolist() == [[1, 8, 12]]


def test_bad_inputs(processor, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    with pytest.raises(ValueError, match="not an image file"):
        processor(str(not_an_image))
    with pytest.raises(ValueError, match="does not exist"):
        processor(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="is not a file"):
        processor(str(tmp_path))
    with pytest.raises(ValueError, match="zero size"):
        processor(PIL.Image.new("RGB", (0, 10)))
    with pytest.raises(ValueError, match="zero size"):
        processor(np.zeros((0, 10, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        processor(np.full((32, 32, 3), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        processor(np.zeros((32, 32, 5), dtype=np.uint8))
    with pytest.raises(TypeError, match="PIL.Image.Image"):
        processor(12345)
    with pytest.raises(ValueError, match="No images"):
        processor([])
    with pytest.raises(ValueError, match="`mode` must be one of"):
        processor(np.zeros((32, 32, 3), dtype=np.uint8), mode="generate")
    with pytest.raises(ValueError, match="rgba_background"):
        LLaDAUniImageProcessor(rgba_background=[255, 255])
    with pytest.raises(ValueError, match="multiple of `patch_size`"):
        LLaDAUniImageProcessor(resize_factor=24)


def test_save_load_round_trip(tmp_path):
    processor = LLaDAUniImageProcessor(mode="edit", rgba_background=[255, 255, 255], understand_max_pixels=512 * 512)
    processor.save_pretrained(tmp_path)
    for loaded in (LLaDAUniImageProcessor.from_pretrained(tmp_path), AutoImageProcessor.from_pretrained(tmp_path)):
        assert isinstance(loaded, LLaDAUniImageProcessor)
        assert loaded.to_dict() == processor.to_dict()
    picture = IMAGES / "square_64x64_rgba.png"
    np.testing.assert_array_equal(loaded(picture)["pixel_values"], processor(picture)["pixel_values"])


def test_released_preprocessor_config_loads_without_glm_sizes():
    processor = LLaDAUniImageProcessor.from_pretrained(TINY_RELEASED / "image_tokenizer")
    settings = processor.to_dict()
    for glm_only in ("min_pixels", "max_pixels", "merge_size", "temporal_patch_size", "do_resize"):
        assert glm_only not in settings
    assert processor.patch_size == 16 and processor.image_mean == (0.5, 0.5, 0.5)
    case = _case("understand", "portrait_90x200")
    assert processor(IMAGES / "portrait_90x200.png")["image_grid_thw"].tolist() == [case["grid_thw"]]


def test_postprocess(processor):
    decoded = torch.rand(2, 3, 32, 48) * 1.4 - 0.2  # decoders can overshoot [0, 1] slightly
    pictures = processor.postprocess(decoded)
    assert len(pictures) == 2 and pictures[0].size == (48, 32) and pictures[0].mode == "RGB"
    expected = np.round(decoded.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(pictures[1]), expected[1])
    as_numpy = processor.postprocess(decoded[0], output_type="np")
    assert as_numpy.shape == (1, 32, 48, 3) and as_numpy.dtype == np.float32
    assert as_numpy.min() >= 0 and as_numpy.max() <= 1
    from_numpy = processor.postprocess(as_numpy[0])
    np.testing.assert_array_equal(np.asarray(from_numpy[0]), expected[0])
    with pytest.raises(ValueError, match="output_type"):
        processor.postprocess(decoded, output_type="latent")
    with pytest.raises(ValueError, match="channels"):
        processor.postprocess(torch.rand(1, 5, 8, 8))
    with pytest.raises(TypeError, match="torch.Tensor or a numpy array"):
        processor.postprocess([decoded])
