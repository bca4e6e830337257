# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Inpainting and outpainting on the tiny checkpoint: pinned codes, skipped blocks, equivalence with editing and
text-to-image under a full mask, batching, outpainting offsets, mask mapping, blending, pipeline and command line."""

import numpy as np
import PIL.Image
import pytest
import torch

from diffusers_llada_uni import (
    LLaDAUniImageEditPipeline,
    LLaDAUniInpaintPipeline,
    LLaDAUniInpaintPipelineOutput,
    LLaDAUniTextToImagePipeline,
    LLaDAUniUnderstandingPipeline,
)
from llada_uni_cli.main import main
from transformers_llada_uni import LLaDAUniImageProcessor
from transformers_llada_uni.inpainting_llada_uni import (
    as_code_mask,
    mask_image_to_code_mask,
    outpaint_geometry,
)

from conftest import TINY_RELEASED
from generation_testing import expected, model, quiet, tokenizer  # noqa: F401  (fixtures)


pytestmark = pytest.mark.usefixtures("single_thread", "quiet")

# The recorded editing case: an 8 x 8 source, 4 steps per block of 8.
CASE = expected("edit")
GRID = (CASE["h"], CASE["w"])
SETTINGS = CASE["kwargs"]
OFFSET = 1024  # the tiny config's `image_token_offset`, checked below against the config


def _source(ids=None):
    return {"image_tokens": list(CASE["image_token_ids"] if ids is None else ids), "h": GRID[0], "w": GRID[1]}


def _codes(ids=None):
    return torch.tensor(CASE["image_token_ids"] if ids is None else ids).view(GRID) - OFFSET


def _mask(*cells):
    mask = torch.zeros(GRID, dtype=torch.bool)
    for row, col in cells:
        mask[row, col] = True
    return mask


class _Forwards:
    """Counts forwards of the backbone (what the engine runs per step)."""

    def __init__(self, module):
        self.count = 0
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, *args):
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_offset_is_the_configs(model):  # noqa: F811
    assert model.config.image_token_offset == OFFSET


# --------------------------------------------------------------------------------------------- model level
def test_only_masked_codes_change(model, tokenizer):  # noqa: F811
    mask = torch.zeros(GRID, dtype=torch.bool)
    mask[2:4, 3:6] = True
    seen = []
    result = model.inpaint_image(_source(), mask=mask, prompt=CASE["instruction"], tokenizer=tokenizer,
                                 callback=lambda step, block, ids: seen.append(ids.clone()), **SETTINGS)
    codes, source = result.token_ids.view(GRID), _codes()
    assert (result.h, result.w) == GRID
    assert torch.equal(codes[~mask], source[~mask])  # outside the mask: the source codes exactly
    assert (codes[mask] != source[mask]).any()  # the masked cells were generated (the model's own choice)
    # During decoding the given cells never held the mask id, and only masked cells were ever masked.
    for ids in seen:
        canvas = ids[0, : GRID[0] * GRID[1]].view(GRID)
        assert torch.equal(canvas[~mask], source[~mask] + OFFSET)


def test_empty_mask_returns_the_source_without_a_forward(model, tokenizer):  # noqa: F811
    with _Forwards(model.get_decoder()) as forwards:
        result = model.inpaint_image(_source(), mask=torch.zeros(GRID, dtype=torch.bool), prompt="Anything.",
                                     tokenizer=tokenizer, **SETTINGS)
    assert forwards.count == 0 and result.num_forward_passes == 0
    assert torch.equal(result.token_ids.view(GRID), _codes())


def test_blocks_without_masked_cells_run_no_forward(model, tokenizer):  # noqa: F811
    full = model.inpaint_image(_source(), mask=torch.ones(GRID, dtype=torch.bool), prompt=CASE["instruction"],
                               tokenizer=tokenizer, **SETTINGS)
    # One masked cell lies in one block: at most `steps` forwards for it, none for the other blocks.
    with _Forwards(model.get_decoder()) as forwards:
        one = model.inpaint_image(_source(), mask=_mask((5, 2)), prompt=CASE["instruction"], tokenizer=tokenizer,
                                  **SETTINGS)
    assert 1 <= forwards.count == one.num_forward_passes <= SETTINGS["steps"] < full.num_forward_passes


def test_full_mask_equals_editing(model, tokenizer):  # noqa: F811
    full = torch.ones(GRID, dtype=torch.bool)
    inpainted = model.inpaint_image(_source(), mask=full, prompt=CASE["instruction"], tokenizer=tokenizer, **SETTINGS)
    assert inpainted.token_ids.tolist() == CASE["result"]["token_ids"]  # the recording of the original's editing
    sampled = {**SETTINGS, "temperature": 1.0}
    edited = model.edit_image(_source(), instruction=CASE["instruction"], tokenizer=tokenizer,
                              generator=torch.Generator().manual_seed(7), **sampled)
    again = model.inpaint_image(_source(), mask=full, prompt=CASE["instruction"], tokenizer=tokenizer,
                                generator=torch.Generator().manual_seed(7), **sampled)
    assert torch.equal(again.token_ids, edited.token_ids)
    assert again.num_forward_passes == edited.num_forward_passes


def test_full_mask_equals_text_to_image(model, tokenizer):  # noqa: F811
    settings = {"steps": 4, "block_length": 8, "cfg_scale": 2.0, "temperature": 1.0}
    generated = model.generate_image("A red fox", tokenizer=tokenizer, image_h=GRID[0] * 32, image_w=GRID[1] * 32,
                                     generator=torch.Generator().manual_seed(3), **settings)
    inpainted = model.inpaint_image(_source(), mask=torch.ones(GRID, dtype=torch.bool), prompt="A red fox",
                                    tokenizer=tokenizer, conditioning="text_to_image",
                                    generator=torch.Generator().manual_seed(3), **settings)
    assert torch.equal(inpainted.token_ids, generated.token_ids)


@pytest.mark.parametrize("conditioning", ["edit", "text_to_image"])
def test_batched_equals_single_calls(model, tokenizer, conditioning):  # noqa: F811
    other_ids = list(reversed(CASE["image_token_ids"]))
    sources, prompts = [_source(), _source(other_ids)], [CASE["instruction"], "Make it night."]
    masks = [torch.zeros(GRID, dtype=torch.bool), torch.zeros(GRID, dtype=torch.bool)]
    masks[0][1:3, 1:4] = True
    masks[1][5:8, 0:8] = True  # other blocks than the first sample's
    scales = {"cfg_text_scale": 4.0} if conditioning == "edit" else {"cfg_scale": 2.0}
    settings = {"steps": 4, "block_length": 8, "conditioning": conditioning, **scales}
    batch = model.inpaint_image(sources, mask=masks, prompt=prompts, tokenizer=tokenizer, **settings)
    for source, mask, prompt, together in zip(sources, masks, prompts, batch):
        alone = model.inpaint_image(source, mask=mask, prompt=prompt, tokenizer=tokenizer, **settings)
        assert torch.equal(together.token_ids, alone.token_ids)


def test_outpainting_keeps_the_source_at_its_offset(model, tokenizer):  # noqa: F811
    padded = model.inpaint_image(_source(), prompt=CASE["instruction"], tokenizer=tokenizer, pad_left=2, pad_top=2,
                                 **SETTINGS)
    assert (padded.h, padded.w) == (10, 10)
    assert torch.equal(padded.token_ids.view(10, 10)[2:, 2:], _codes())
    centred = model.inpaint_image(_source(), prompt="A wide view.", tokenizer=tokenizer, canvas_size=(8, 12),
                                  conditioning="text_to_image", steps=4, block_length=8, cfg_scale=2.0)
    assert (centred.h, centred.w) == (8, 12)
    assert torch.equal(centred.token_ids.view(8, 12)[:, 2:10], _codes())
    # A mask inside the source repaints those cells too; the rest of the source stays.
    both = model.inpaint_image(_source(), mask=_mask((0, 0)), prompt="Extend.", tokenizer=tokenizer, pad_right=2,
                               **SETTINGS)
    kept = torch.ones(GRID, dtype=torch.bool)
    kept[0, 0] = False
    assert torch.equal(both.token_ids.view(8, 10)[:, :8][kept], _codes()[kept])


def test_clear_errors(model, tokenizer):  # noqa: F811
    with pytest.raises(ValueError, match=r"`mask` has shape \(4, 4\) but the code grid is \(8, 8\)"):
        model.inpaint_image(_source(), mask=torch.ones(4, 4, dtype=torch.bool), prompt="x", tokenizer=tokenizer)
    with pytest.raises(TypeError, match="bool array or tensor"):
        model.inpaint_image(_source(), mask=torch.ones(GRID), prompt="x", tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"grid w=9 has no `<\|reserved_token_9\|>` token"):
        model.inpaint_image(_source(), prompt="x", tokenizer=tokenizer, pad_left=1)
    with pytest.raises(ValueError, match="`prompt` is empty"):
        model.inpaint_image(_source(), mask=_mask((0, 0)), prompt="  ", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="Give `mask`"):
        model.inpaint_image(_source(), prompt="x", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="`conditioning` must be one of"):
        model.inpaint_image(_source(), mask=_mask((0, 0)), prompt="x", tokenizer=tokenizer, conditioning="caption")
    with pytest.raises(ValueError, match="`cfg_scale` is text-to-image guidance"):
        model.inpaint_image(_source(), mask=_mask((0, 0)), prompt="x", tokenizer=tokenizer, cfg_scale=2.0)
    with pytest.raises(ValueError, match="are editing guidance"):
        model.inpaint_image(_source(), mask=_mask((0, 0)), prompt="x", tokenizer=tokenizer,
                            conditioning="text_to_image", cfg_text_scale=2.0)
    with pytest.raises(ValueError, match="not both"):
        outpaint_geometry(8, 8, pad_left=2, canvas_size=(10, 10))
    with pytest.raises(ValueError, match="smaller than the source"):
        outpaint_geometry(8, 8, canvas_size=(6, 10))


# --------------------------------------------------------------------------------------------- mask mapping
def test_pixel_masks_map_onto_the_code_grid():
    processor = LLaDAUniImageProcessor(edit_image_size=128)
    pixels = np.zeros((128, 128), dtype=np.float32)
    pixels[30:60, 40:90] = 1.0  # rows 30..59 touch cells 1..3, columns 40..89 cells 2..5
    wanted = torch.zeros(8, 8, dtype=torch.bool)
    wanted[1:4, 2:6] = True
    forms = [pixels, PIL.Image.fromarray((pixels * 255).astype(np.uint8)), torch.from_numpy(pixels)[None],
             PIL.Image.fromarray((pixels * 255).astype(np.uint8)).convert("RGB")]
    for form in forms:
        got = mask_image_to_code_mask(form, processor, picture_size=(128, 128), grid=(8, 8))
        assert torch.equal(got, wanted), type(form)
    # `mask_threshold`: cells covered by at least that fraction. Per cell the covered fraction is (rows covered /
    # 16) * (columns covered / 16): rows 1, 2, 3 hold 2, 16, 12 mask rows; columns 2..5 hold 8, 16, 16, 10.
    half = mask_image_to_code_mask(pixels, processor, picture_size=(128, 128), mask_threshold=0.5, grid=(8, 8))
    wanted_half = torch.zeros(8, 8, dtype=torch.bool)
    wanted_half[2, 2:6] = True  # 1 * (8/16, 1, 1, 10/16)
    wanted_half[3, 3:5] = True  # 12/16 * 1; 12/16 * 8/16 and 12/16 * 10/16 fall below one half
    assert torch.equal(half, wanted_half)
    # `mask_dilation`: one more cell on every side.
    grown = mask_image_to_code_mask(pixels, processor, picture_size=(128, 128), mask_dilation=1, grid=(8, 8))
    assert torch.equal(grown, torch.zeros(8, 8, dtype=torch.bool).index_fill_(0, torch.arange(0, 5), True)
                       & torch.zeros(8, 8, dtype=torch.bool).index_fill_(1, torch.arange(1, 7), True))
    # A code-level bool mask is taken as it is (and dilated on request).
    assert torch.equal(mask_image_to_code_mask(wanted.numpy(), processor, grid=(8, 8)), wanted)
    assert torch.equal(as_code_mask(wanted, 8, 8, mask_dilation=1), grown)


def test_masks_get_the_pictures_crop():
    # A 200 x 100 picture gets the centred editing crop without rescaling (the processor's `edit` mode; a 160 x 96
    # crop at this budget): the mask follows the same crop.
    processor = LLaDAUniImageProcessor(edit_image_size=128)
    width, height = processor.get_processed_size(200, 100, mode="edit")
    left, top = (200 - width) // 2, max(0, (100 - height) // 2)
    pixels = np.zeros((100, 200), dtype=np.float32)
    pixels[top : top + 16, left : left + 16] = 1.0  # exactly the crop's first cell
    got = mask_image_to_code_mask(pixels, processor, picture_size=(200, 100), grid=(height // 16, width // 16))
    assert got.sum() == 1 and got[0, 0]
    # The resize-crop mode scales the mask with the picture: a mask of the left half stays the left half.
    width, height = processor.get_processed_size(200, 100, mode="edit_resize_crop")
    pixels = np.zeros((100, 200), dtype=np.float32)
    pixels[:, :100] = 1.0
    got = mask_image_to_code_mask(pixels, processor, picture_size=(200, 100), mode="edit_resize_crop",
                                  grid=(height // 16, width // 16))
    assert got[:, 0].all() and not got[:, -1].any()


def test_mask_errors():
    processor = LLaDAUniImageProcessor(edit_image_size=128)
    with pytest.raises(ValueError, match="is 64 x 64 px but the picture is 128 x 128 px"):
        mask_image_to_code_mask(np.zeros((64, 64), np.float32), processor, picture_size=(128, 128), grid=(8, 8))
    with pytest.raises(ValueError, match="mask_threshold"):
        mask_image_to_code_mask(np.zeros((128, 128), np.float32), processor, picture_size=(128, 128),
                                mask_threshold=0.0)
    with pytest.raises(ValueError, match="mask_dilation"):
        mask_image_to_code_mask(np.zeros((128, 128), np.float32), processor, picture_size=(128, 128),
                                mask_dilation=-1)


# --------------------------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def pipe():
    t2i = LLaDAUniTextToImagePipeline.from_released(TINY_RELEASED)
    t2i.set_progress_bar_config(disable=True)
    return LLaDAUniInpaintPipeline.from_pipe(t2i)


@pytest.fixture(scope="module")
def picture():
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))


def _pixel_mask():
    mask = np.zeros((128, 128), dtype=np.float32)
    mask[30:60, 40:90] = 1.0
    return mask


PIPE_SETTINGS = {"steps": 2, "block_length": 8, "num_inference_steps": 1, "image_kwargs": {"edit_image_size": 128}}


def test_from_pipe_shares_the_parts(pipe):
    for other in (LLaDAUniImageEditPipeline, LLaDAUniUnderstandingPipeline, LLaDAUniTextToImagePipeline):
        there = other.from_pipe(pipe)
        back = LLaDAUniInpaintPipeline.from_pipe(there)
        for name in ("model", "processor", "image_tokenizer", "decoder", "turbo_decoder"):
            assert getattr(back, name) is getattr(pipe, name)


def test_pipeline_blends_the_source_back_outside_the_mask(pipe, picture):
    calls = []
    out = pipe(image=picture, mask_image=_pixel_mask(), prompt="Add a cat.", blend_radius=8,
               generator=torch.Generator().manual_seed(0),
               callback_on_step_end=lambda p, step, block, kwargs: calls.append((step, kwargs["image_tokens"].shape)),
               **PIPE_SETTINGS)
    assert isinstance(out, LLaDAUniInpaintPipelineOutput) and out.grid_sizes == [(8, 8)]
    region = out.repaint_masks[0]
    assert region.sum() == 12 and region[1:4, 2:6].all()
    encoded = pipe.processor.encode_images(picture, pipe.image_tokenizer, mode="edit", edit_image_size=128)
    source = torch.tensor(encoded["image_tokens"]).view(8, 8) - OFFSET
    assert torch.equal(out.image_tokens[0].view(8, 8)[~region], source[~region])
    assert calls and [step for step, _ in calls] == list(range(len(calls))) and calls[0][1] == (1, 64)

    # Outside the region dilated by the blend radius: the (cropped, decoder-scaled) source pixels exactly.
    image = np.asarray(out.images[0])
    reference = np.asarray(picture.resize((256, 256), PIL.Image.BICUBIC))
    cells = region.repeat_interleave(32, 0).repeat_interleave(32, 1)
    dilated = torch.nn.functional.max_pool2d(cells[None, None].float(), 17, stride=1, padding=8)[0, 0] > 0
    np.testing.assert_array_equal(image[~dilated.numpy()], reference[~dilated.numpy()])
    inside = cells.numpy()
    raw = pipe(image=picture, mask_image=_pixel_mask(), prompt="Add a cat.", blend_unmasked=False, output_type="np",
               generator=torch.Generator().manual_seed(0), **PIPE_SETTINGS).images[0]
    np.testing.assert_array_equal(image[inside], (raw[inside] * 255).round().astype(np.uint8))  # generated inside
    assert (np.abs(raw[~dilated.numpy()] * 255 - reference[~dilated.numpy()]) > 1).any()  # without blending


def test_pipeline_outpaints_and_takes_code_masks(pipe, picture):
    out = pipe(image=picture, prompt="Wider.", pad_left=2, pad_right=2, output_type="np",
               generator=torch.Generator().manual_seed(0), **PIPE_SETTINGS)
    assert out.grid_sizes == [(8, 12)] and out.images.shape == (1, 256, 384, 3)
    assert out.repaint_masks[0][:, :2].all() and not out.repaint_masks[0][:, 2:10].any()
    reference = np.asarray(picture.resize((256, 256), PIL.Image.BICUBIC)).astype(np.float32) / 255
    # The source's pixels (away from the new border) are the source's.
    np.testing.assert_allclose(out.images[0][:, 64 + 8 : 320 - 8], reference[:, 8:-8], atol=0.5 / 255)
    codes = pipe(image=picture, mask_image=_mask((0, 0)).numpy(), prompt="x", output_type="codes", **PIPE_SETTINGS)
    assert codes.images is None and codes.repaint_masks[0].sum() == 1


def test_pipeline_errors(pipe, picture):
    with pytest.raises(ValueError, match="is 64 x 64 px but the picture is 128 x 128 px"):
        pipe(image=picture, mask_image=np.zeros((64, 64), np.float32), prompt="x", **PIPE_SETTINGS)
    with pytest.raises(ValueError, match="Give `mask_image`"):
        pipe(image=picture, prompt="x", **PIPE_SETTINGS)
    with pytest.raises(ValueError, match="`prompt` is empty"):
        pipe(image=picture, mask_image=_pixel_mask(), prompt="", **PIPE_SETTINGS)
    # A landscape picture cropped to 6 x 10 codes: no `<|reserved_token_6|>` to write that grid.
    with pytest.raises(ValueError, match="has no `<\\|reserved_token_6\\|>` token"):
        pipe(image=PIL.Image.new("RGB", (150, 100)), mask_image=np.ones((100, 150), np.float32), prompt="x",
             **PIPE_SETTINGS)


# --------------------------------------------------------------------------------------------- command line
def test_command_line(tmp_path, picture, capsys):
    source, mask = tmp_path / "source.png", tmp_path / "mask.png"
    picture.save(source)
    PIL.Image.fromarray((_pixel_mask() * 255).astype(np.uint8)).save(mask)
    common = ["--model", str(TINY_RELEASED), "--no-progress", "--image", str(source), "--edit-size", "128",
              "--steps", "2", "--block-length", "8", "--decoder-steps", "1"]
    inpainted = tmp_path / "inpainted.png"
    assert main(["inpaint", *common, "--mask", str(mask), "--prompt", "A cat.", "--output", str(inpainted)]) == 0
    assert PIL.Image.open(inpainted).size == (256, 256)
    assert "12 regenerated" in capsys.readouterr().out
    outpainted = tmp_path / "outpainted.png"
    assert main(["outpaint", *common, "--pad-top", "2", "--prompt", "Sky.", "--output", str(outpainted)]) == 0
    assert PIL.Image.open(outpainted).size == (256, 320)
    capsys.readouterr()
    assert main(["outpaint", *common, "--pad-top", "1", "--prompt", "Sky.", "--output", str(outpainted)]) == 1
    err = capsys.readouterr().err.strip().splitlines()  # loading notes, then the one-line failure
    assert err[-1].startswith("llada-uni outpaint: error:") and "reserved_token_9" in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("command, option", [("inpaint", "--mask-threshold"), ("outpaint", "--pad-left")])
def test_command_line_help(command, option, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for wanted in ("usage: llada-uni " + command, option, "--model", "--seed", "--device", "--conditioning"):
        assert wanted in out
