"""The masked-diffusion objective and its data: noising, masks, the loss against a hand computation, options, records
through `datasets`, and input errors that name the row and the column."""

import hashlib
import json

import datasets
import pytest
import torch

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers_llada_uni.prompting_llada_uni import get_special_token_ids
from transformers_llada_uni.training_data_llada_uni import (
    ENCODED_COLUMNS,
    DataCollatorForMaskedDiffusion,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionExample,
    encode_training_dataset,
    load_training_dataset,
)
from transformers_llada_uni.training_objective_llada_uni import (
    MaskedDiffusionConfig,
    block_diffusion_attention_mask,
    masked_diffusion_loss,
)


BLOCK = 4
SEED = 1234


@pytest.fixture(scope="module")
def tiny(tiny_released_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_released_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_released_dir)
    return model, tokenizer


@pytest.fixture(scope="module")
def special(tiny):
    model, tokenizer = tiny
    return get_special_token_ids(tokenizer, model.config)


@pytest.fixture(scope="module")
def encoder(tiny):
    model, tokenizer = tiny
    return LLaDAUniTrainingDataEncoder(tokenizer, model.config)


def hand_examples(special):
    # Two text examples of different lengths (the shorter one gets EOS padding, which is part of its target); ids far
    # from the special tokens, read from nowhere but this test.
    return [
        MaskedDiffusionExample(prompt_ids=[11, 12, 13, 14, 15], response_ids=[21, 22, 23, 24, 25, 26, 27, 28, 29], index=0),
        MaskedDiffusionExample(prompt_ids=[31, 32, 33], response_ids=[41, 42, 43, 44], index=1),
    ]


def test_training_uses_the_prompting_special_ids(tiny, encoder):
    model, tokenizer = tiny
    assert encoder.special == get_special_token_ids(tokenizer, model.config)
    assert encoder.special.mask_token_id == tokenizer.convert_tokens_to_ids("<|mask|>")
    collator = DataCollatorForMaskedDiffusion(encoder.special, MaskedDiffusionConfig(block_length=BLOCK),
                                              model_config=model.config)
    assert collator.pad_token_id == model.config.pad_token_id


def keyed_uniforms(seed, epoch, index, purpose, n):
    """The documented key of an example's random stream: blake2b of "seed:epoch:index:purpose", 8 bytes, little end."""
    key = hashlib.blake2b(f"{seed}:{epoch}:{index}:{purpose}".encode(), digest_size=8).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(key, "little") & ((1 << 63) - 1))
    return torch.rand(n, generator=generator)


def expected_noise(examples, special, lo, hi, seed, epoch=0):
    """The documented draws, replayed by hand: t per sequence, one uniform per token, mask where below t."""
    length = max(len(e.prompt_ids) + len(e.response_ids) + 1 for e in examples)
    clean = torch.full((len(examples), length), special.eos_token_id)
    maskable = torch.zeros((len(examples), length), dtype=torch.bool)
    masked = torch.zeros_like(maskable)
    levels = []
    for row, e in enumerate(examples):
        ids = e.prompt_ids + e.response_ids
        clean[row, : len(ids)] = torch.tensor(ids)
        maskable[row, len(e.prompt_ids) :] = True
        t = float(lo + (hi - lo) * keyed_uniforms(seed, epoch, e.index, "level", 1)[0])
        u = keyed_uniforms(seed, epoch, e.index, "tokens", length)
        for col in range(length):
            masked[row, col] = bool(maskable[row, col]) and float(u[col]) < t
        if not masked[row].any():
            cols = [c for c in range(length) if maskable[row, c]]
            masked[row, min(cols, key=lambda c: float(u[c]))] = True
        levels.append(t)
    return clean, masked, torch.tensor(levels)


def test_collator_noising_matches_the_documented_draws(special):
    examples = hand_examples(special)
    config = MaskedDiffusionConfig(block_length=BLOCK, noise_range=(0.3, 0.8))
    batch = DataCollatorForMaskedDiffusion(special, config, seed=SEED)(examples)
    clean, masked, t = expected_noise(examples, special, 0.3, 0.8, SEED)
    assert torch.equal(batch["input_ids"], clean)
    assert torch.equal(batch["masked"], masked)
    assert torch.equal(batch["noisy_input_ids"], clean.masked_fill(masked, special.mask_token_id))
    assert torch.allclose(batch["noise_level"], t[:, None].expand_as(batch["noise_level"]))
    # prompt never masked; EOS padding is part of the short example's target
    assert not batch["masked"][0, :5].any() and not batch["masked"][1, :3].any()
    assert batch["maskable"][1, 3:].all() and batch["attention_mask"].all()
    assert (batch["input_ids"][1, 7:] == special.eos_token_id).all()


def test_an_examples_noise_does_not_depend_on_its_batch(special):
    # What makes one process, data parallel and FSDP runs of one global batch see the same inputs, and a resumed run
    # the same noise: the draws are keyed by (seed, epoch, index), not by a stream shared across the batch.
    image = MaskedDiffusionExample(prompt_ids=[11, 12, 13], response_ids=list(range(1030, 1046)), pad_with_eos=False,
                                   index=7)
    other = MaskedDiffusionExample(prompt_ids=[11] * 9, response_ids=list(range(1030, 1050)), pad_with_eos=False,
                                   index=3)
    config = MaskedDiffusionConfig(block_length=BLOCK)
    alone = DataCollatorForMaskedDiffusion(special, config, seed=SEED)([image])
    together = DataCollatorForMaskedDiffusion(special, config, seed=SEED)([other, image])
    n = alone["input_ids"].shape[1]
    assert torch.equal(together["masked"][1, :n], alone["masked"][0])
    assert not together["masked"][1, n:].any()  # image padding is never a target
    collator = DataCollatorForMaskedDiffusion(special, config, seed=SEED)
    collator.set_epoch(1)
    assert not torch.equal(collator([image])["masked"], alone["masked"])  # a new epoch noises afresh
    # rows of a `datasets.Dataset` collate like the examples they encode
    assert torch.equal(DataCollatorForMaskedDiffusion(special, config, seed=SEED)([image.to_features()])["masked"],
                       alone["masked"])


def test_block_diffusion_mask_matches_its_definition():
    length, block = 7, 3
    pad = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    mask = block_diffusion_attention_mask(pad, block)
    assert mask.shape == (2, 1, 2 * length, 2 * length)
    for b in range(2):
        for q in range(2 * length):
            for k in range(2 * length):
                qn, kn = q < length, k < length  # noisy half first
                qb, kb = (q % length) // block, (k % length) // block
                if qn and kn:
                    allowed = qb == kb
                elif qn and not kn:
                    allowed = kb < qb
                elif not qn and not kn:
                    allowed = kb <= qb
                else:
                    allowed = False
                allowed = allowed and bool(pad[b, k % length])
                assert bool(mask[b, 0, q, k]) == allowed, (b, q, k)


def hand_block_logits(model, clean_row, noisy_row, block, block_length):
    """Clean prefix + one noisy block, block-causal (the model's own 2-D-mask path), logits of that block."""
    start = block * block_length
    end = min(start + block_length, clean_row.numel())
    ids = torch.cat([clean_row[:start], noisy_row[start:end]])[None]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), block_length=block_length).logits
    return logits[0, start:end]


def hand_cross_entropy(logits_row, target):
    return float(torch.logsumexp(logits_row.double(), dim=-1) - logits_row.double()[target])


def test_doubled_loss_equals_hand_computation(tiny, special):
    model, _ = tiny
    examples = hand_examples(special)
    config = MaskedDiffusionConfig(block_length=BLOCK)
    batch = DataCollatorForMaskedDiffusion(special, config, seed=SEED)(examples)
    clean, noisy, masked = batch["input_ids"], batch["noisy_input_ids"], batch["masked"]
    per_sequence = []
    for row in range(clean.shape[0]):
        total, count = 0.0, 0
        for block in range(-(-clean.shape[1] // BLOCK)):
            logits = hand_block_logits(model, clean[row], noisy[row], block, BLOCK)
            for offset in range(logits.shape[0]):
                col = block * BLOCK + offset
                if masked[row, col]:
                    total += hand_cross_entropy(logits[offset], int(clean[row, col]))
                    count += 1
        per_sequence.append(total / count)
    expected = sum(per_sequence) / len(per_sequence)
    with torch.no_grad():
        out = masked_diffusion_loss(model, batch, config)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert out.per_sequence_loss.tolist() == pytest.approx(per_sequence, rel=1e-5, abs=1e-5)


def test_one_sequence_loss_equals_the_models_labels_loss(tiny, special):
    """The model's `labels=` loss (masked-LM: token mean over labelled positions, no shift) and the objective agree
    where their normalisations coincide, one sequence; with several sequences the objective averages per sequence
    (DESIGN.md section 7), which a token mean cannot express, so it does not go through `labels=`."""
    model, _ = tiny
    config = MaskedDiffusionConfig(block_length=BLOCK)
    examples = hand_examples(special)
    batch = DataCollatorForMaskedDiffusion(special, config, seed=SEED)(examples)
    clean, noisy, masked = batch["input_ids"], batch["noisy_input_ids"], batch["masked"]
    length = clean.shape[1]
    per_token_means = []
    for row in range(clean.shape[0]):
        one = {key: value[row : row + 1] for key, value in batch.items()}
        # The doubled sequence as a masked-LM batch: labels on the noisy half where it was masked, -100 elsewhere.
        labels = torch.full((1, 2 * length), -100)
        labels[0, :length] = torch.where(masked[row], clean[row], -100)
        with torch.no_grad():
            from_labels = model(
                input_ids=torch.cat([noisy[row : row + 1], clean[row : row + 1]], dim=1),
                attention_mask=block_diffusion_attention_mask(one["attention_mask"], BLOCK),
                position_ids=torch.arange(length).repeat(2)[None],
                labels=labels,
            ).loss
            objective = masked_diffusion_loss(model, one, config).loss
        assert objective.item() == pytest.approx(from_labels.item(), rel=1e-5, abs=1e-6)
        per_token_means.append(from_labels.item())
    with torch.no_grad():
        batch_loss = masked_diffusion_loss(model, batch, config).loss.item()
    assert batch_loss == pytest.approx(sum(per_token_means) / len(per_token_means), rel=1e-5, abs=1e-6)


def test_one_block_loss_equals_hand_computation_and_doubled_logits(tiny, special):
    model, _ = tiny
    examples = hand_examples(special)
    doubled_cfg = MaskedDiffusionConfig(block_length=BLOCK)
    one_cfg = MaskedDiffusionConfig(block_length=BLOCK, form="one_block")
    doubled = DataCollatorForMaskedDiffusion(special, doubled_cfg, seed=SEED)(examples)
    one = DataCollatorForMaskedDiffusion(special, one_cfg, seed=SEED)(examples)
    # the same noise: the block choice is drawn after the token noise
    assert torch.equal(one["noisy_input_ids"], doubled["noisy_input_ids"])
    clean, noisy, masked = one["input_ids"], one["noisy_input_ids"], one["masked"]
    with torch.no_grad():
        one_out = masked_diffusion_loss(model, one, one_cfg, return_logits=True)
        doubled_out = masked_diffusion_loss(model, doubled, doubled_cfg, return_logits=True)

    per_sequence, one_rows = [], []
    for row in range(clean.shape[0]):
        block = int(one["block_index"][row])
        assert masked[row, block * BLOCK : (block + 1) * BLOCK].any()
        logits = hand_block_logits(model, clean[row], noisy[row], block, BLOCK)
        losses = []
        for offset in range(logits.shape[0]):
            col = block * BLOCK + offset
            if masked[row, col]:
                losses.append(hand_cross_entropy(logits[offset], int(clean[row, col])))
                one_rows.append((row, col))
        per_sequence.append(sum(losses) / len(losses))
    assert one_out.loss.item() == pytest.approx(sum(per_sequence) / len(per_sequence), rel=1e-5, abs=1e-5)

    # The doubled form's logits at the chosen block's masked positions are the one-block form's logits.
    doubled_rows = masked.nonzero().tolist()
    picked = torch.stack([doubled_out.logits[doubled_rows.index([r, c])] for r, c in one_rows])
    # float32 attention over 2L vs L keys: equal up to rounding (logits are O(10))
    assert torch.allclose(picked, one_out.logits, atol=1e-4, rtol=1e-5)


def test_inverse_t_weighting(tiny, special):
    model, _ = tiny
    examples = hand_examples(special)
    plain_cfg = MaskedDiffusionConfig(block_length=BLOCK, noise_range=(0.001, 1.0))
    weighted_cfg = MaskedDiffusionConfig(block_length=BLOCK, noise_range=(0.001, 1.0), loss_weighting="inverse_t")
    batch = DataCollatorForMaskedDiffusion(special, plain_cfg, seed=SEED)(examples)
    with torch.no_grad():
        plain = masked_diffusion_loss(model, batch, plain_cfg)
        weighted = masked_diffusion_loss(model, batch, weighted_cfg)
    t = batch["noise_level"][:, 0]
    n_masked = batch["masked"].sum(1).double()
    n_maskable = batch["maskable"].sum(1).double()
    expected = plain.per_sequence_loss.double() * n_masked / t.double() / n_maskable
    assert weighted.per_sequence_loss.double().tolist() == pytest.approx(expected.tolist(), rel=1e-5)


def test_per_block_noise_levels(special):
    examples = hand_examples(special)
    config = MaskedDiffusionConfig(block_length=BLOCK, per_block_noise=True, pad_to_multiple_of=BLOCK)
    batch = DataCollatorForMaskedDiffusion(special, config, seed=SEED)(examples)
    level = batch["noise_level"]
    blocks = level.reshape(level.shape[0], -1, BLOCK)
    assert torch.equal(blocks, blocks[:, :, :1].expand_as(blocks))
    assert blocks[0, :, 0].unique().numel() == blocks.shape[1]
    assert ((level >= 0.3) & (level <= 0.8)).all()


def test_zero_masked_guard_and_empty_batch(tiny, special):
    model, _ = tiny
    examples = hand_examples(special)
    config = MaskedDiffusionConfig(block_length=BLOCK, noise_range=(1e-9, 1e-9))
    batch = DataCollatorForMaskedDiffusion(special, config, seed=SEED)(examples)
    assert batch["masked"].sum(1).tolist() == [1, 1]

    nothing = [MaskedDiffusionExample(prompt_ids=[11, 12, 13], response_ids=[], pad_with_eos=False)]
    empty = DataCollatorForMaskedDiffusion(special, config, seed=SEED)(nothing)
    assert not empty["masked"].any()
    out = masked_diffusion_loss(model, empty, config)
    assert out.loss.item() == 0.0
    out.loss.backward()  # still connected to the graph


def test_condition_dropout_swaps_prompts(special):
    cond = [11, 12, 13, 14, 15, 16]
    no_text = [11, 99, 16]
    no_image = [11, 12, 98, 16]
    example = MaskedDiffusionExample(
        prompt_ids=cond,
        response_ids=[1030, 1031, 1032, 1033],
        task="image_editing",
        pad_with_eos=False,
        dropout_prompts={"no_text": no_text, "no_image": no_image},
    )
    config = MaskedDiffusionConfig(block_length=BLOCK, text_dropout=0.5, image_dropout=0.5)
    collator = DataCollatorForMaskedDiffusion(special, config, seed=SEED)
    seen = set()
    for _ in range(30):
        batch = collator([example])
        real = batch["attention_mask"][0].bool()
        ids = batch["input_ids"][0][real].tolist()
        prompt = ids[: len(ids) - 4]
        assert ids[-4:] == [1030, 1031, 1032, 1033]
        assert prompt in (cond, no_text, no_image)
        seen.add(tuple(prompt))
        # image targets are padded with ignored tokens, never targets
        assert not batch["maskable"][0][~real].any()
    assert len(seen) == 3


def test_no_dropout_without_probability(special):
    example = MaskedDiffusionExample(
        prompt_ids=[11, 12, 13], response_ids=[1030, 1031], pad_with_eos=False, dropout_prompts={"no_text": [11, 99]}
    )
    collator = DataCollatorForMaskedDiffusion(special, MaskedDiffusionConfig(block_length=BLOCK), seed=SEED)
    for _ in range(10):
        assert collator([example])["input_ids"][0, :3].tolist() == [11, 12, 13]


def test_chat_record_encoding(tiny):
    model, tokenizer = tiny
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    messages = [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]
    example = encoder.encode({"messages": messages})
    prompt_text = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert example.prompt_ids == tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(example.response_ids).startswith("Four.")
    assert example.pad_with_eos
    same = encoder.encode({"prompt": "What is two plus two?", "response": "Four."})
    assert same.prompt_ids == example.prompt_ids and same.response_ids == example.response_ids


def test_text_to_image_record_from_codes(tiny):
    model, tokenizer = tiny
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    codes = [[1, 2, 3, 4, 5, 6, 7, 8]] * 8
    example = encoder.encode({"prompt": "a red fox", "image_codes": codes})
    offset = model.config.image_token_offset
    assert example.response_ids == [c + offset for row in codes for c in row]
    assert not example.pad_with_eos
    assert example.prompt_ids[-1] == tokenizer.convert_tokens_to_ids("<boi>")
    assert "no_text" in example.dropout_prompts


# -- errors at the public boundary -----------------------------------------------------------------------------------


def test_record_without_response_is_rejected(encoder):
    with pytest.raises(ValueError, match="column 'messages': no response"):
        encoder.encode({"messages": [{"role": "user", "content": "hello"}]})
    with pytest.raises(ValueError, match="column 'response': no response"):
        encoder.encode({"prompt": "hello"})
    with pytest.raises(ValueError, match="no response"):
        encoder.encode({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]})


def test_unreadable_image_is_rejected_by_the_image_processors_loader(tiny, tmp_path):
    model, tokenizer = tiny
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")

    def image_tokenizer(image, task):  # never reached: the file cannot be opened
        raise AssertionError("called with an unreadable image")

    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config, image_tokenizer=image_tokenizer)
    with pytest.raises(ValueError, match="column 'image': .*broken.png.* is not an image file PIL can read"):
        encoder.encode({"prompt": "a fox", "image": str(broken)})
    with pytest.raises(ValueError, match="column 'source_image': Image path .*missing.png.* does not exist"):
        encoder.encode({"instruction": "make it blue", "source_image": str(tmp_path / "missing.png"),
                        "edited_image": str(broken)})


def test_target_longer_than_max_length_is_rejected(tiny, special):
    model, tokenizer = tiny
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config, max_length=16)
    with pytest.raises(ValueError, match="longer than max_length=16"):
        encoder.encode({"prompt": "hi", "response": "a rather long answer that will not fit in sixteen tokens"})
    config = MaskedDiffusionConfig(block_length=BLOCK, max_length=8)
    with pytest.raises(ValueError, match="longer than max_length=8"):
        DataCollatorForMaskedDiffusion(special, config)([MaskedDiffusionExample(prompt_ids=[11] * 6, response_ids=[12] * 6)])


def test_bad_codes_and_options_are_rejected(encoder, special):
    with pytest.raises(ValueError, match="column 'image_codes': image code .* outside the codebook"):
        encoder.encode({"prompt": "x", "image_codes": [[0, special.image_codebook_size]]})
    with pytest.raises(ValueError, match="column 'image_codes': 3 image codes do not fill the grid 2 x 2"):
        encoder.encode({"prompt": "x", "image_codes": [1, 2, 3], "grid": [2, 2]})
    with pytest.raises(ValueError, match="column 'grid': a grid must be two positive integers"):
        encoder.encode({"prompt": "x", "image_codes": [1, 2, 3, 4], "grid": [2, 0]})
    with pytest.raises(ValueError, match="column 'image_codes': Image grid h=2 has no `<|reserved_token_2|>` token"):
        encoder.encode({"prompt": "x", "image_codes": [[1, 2], [3, 4]]})
    with pytest.raises(ValueError, match="noise_range"):
        MaskedDiffusionConfig(noise_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="form"):
        MaskedDiffusionConfig(form="triple")
    with pytest.raises(ValueError, match="loss_weighting"):
        MaskedDiffusionConfig(loss_weighting="1/t")
    with pytest.raises(TypeError, match="encoded example"):
        DataCollatorForMaskedDiffusion(special, MaskedDiffusionConfig(block_length=4))([{"input_ids": [1]}])
    with pytest.raises(TypeError, match="get_special_token_ids"):
        DataCollatorForMaskedDiffusion({"mask_token_id": 1}, MaskedDiffusionConfig(block_length=4))


# -- datasets ----------------------------------------------------------------------------------------------------------


GRID = 8  # the smallest grid side with a `<|reserved_token_N|>` token
MIXED = [
    {"prompt": "What colour is the sky?", "response": "Blue."},
    {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]},
    {"prompt": "a red fox", "image_codes": [[(r * GRID + c) % 50 for c in range(GRID)] for r in range(GRID)]},
    {"instruction": "make it blue", "source_codes": list(range(GRID * GRID)), "source_grid": [GRID, GRID],
     "edited_codes": [[(r + c) % 50 for c in range(GRID)] for r in range(GRID)]},
]


def test_text_text_to_image_and_editing_rows_mix_in_one_dataset(encoder, special, tmp_path):
    direct = [encoder.encode(record) for record in MIXED]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MIXED))
    # JSON lines through datasets (absent columns come back as None), a parquet copy of it, and a stream
    loaded = load_training_dataset(path)
    assert isinstance(loaded, datasets.Dataset) and len(loaded) == 4
    parquet = tmp_path / "mixed.parquet"
    loaded.to_parquet(str(parquet))
    for records in (loaded, load_training_dataset(parquet), MIXED):
        encoded = encode_training_dataset(records, encoder)
        assert encoded.column_names == list(ENCODED_COLUMNS)
        assert [row["task"] for row in encoded] == ["text", "text", "text_to_image", "image_editing"]
        for row, example in zip(encoded, direct):
            assert row["prompt_ids"] == example.prompt_ids and row["response_ids"] == example.response_ids
        assert [row["index"] for row in encoded] == [0, 1, 2, 3]
    streamed = encode_training_dataset(load_training_dataset(path, streaming=True), encoder)
    assert isinstance(streamed, datasets.IterableDataset)
    rows = list(streamed)
    assert [row["response_ids"] for row in rows] == [e.response_ids for e in direct]
    batch = DataCollatorForMaskedDiffusion(special, MaskedDiffusionConfig(block_length=BLOCK))(rows)
    assert batch["input_ids"].shape[0] == 4


def test_picture_columns_of_a_dataset(tiny, images_dir):
    model, tokenizer = tiny
    pictures = sorted(images_dir.glob("*.png"))
    seen = []

    def image_tokenizer(image, task):
        seen.append((image.size, task))
        return [[1] * GRID] * GRID, (GRID, GRID)

    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config, image_tokenizer=image_tokenizer,
                                          base_dir=str(images_dir))
    table = datasets.Dataset.from_dict(
        {"prompt": ["a landscape", None], "image": [str(pictures[0]), None], "instruction": [None, "flip it"],
         "source_image": [None, pictures[1].name], "edited_image": [None, pictures[1].name]}
    ).cast_column("image", datasets.Image())
    encoded = encode_training_dataset(table, encoder)
    assert [row["task"] for row in encoded] == ["text_to_image", "image_editing"]
    assert seen[0][1] == "text_to_image" and seen[1][1] == "image_editing"  # relative paths read from base_dir


def test_a_bad_row_is_named_by_index_and_column(encoder, tmp_path):
    ragged = MIXED[:2] + [{"prompt": "a red fox", "image_codes": [[1] * GRID] * (GRID - 1) + [[1]]}]
    with pytest.raises(ValueError, match=r"^row 2, column 'image_codes': the rows of a 2-D code list differ"):
        encode_training_dataset(ragged, encoder)
    # In a JSON-lines file the error names the line (blank lines are not rows).
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(MIXED[0]) + "\n\n" + json.dumps(MIXED[2]) + "\n"
                    + json.dumps({"prompt": "x", "image_codes": [[1, 2, 3]], "grid": [2, 2]}) + "\n")
    with pytest.raises(ValueError, match=r"data.jsonl:4 \(row 2\), column 'image_codes': 3 image codes do not fill"):
        encode_training_dataset(load_training_dataset(path), encoder, source=str(path))
    path.write_text(json.dumps(MIXED[0]) + "\n\n" + json.dumps(MIXED[2]) + "\n"
                    + json.dumps({"prompt": "x", "image_codes": [1, 2, 3], "grid": [2, 2]}) + "\n")
    with pytest.raises(ValueError, match=r"data.jsonl:4: column 'image_codes' is a list of number here but a list of "
                                         r"list of number on line 3"):
        load_training_dataset(path)
    path.write_text(json.dumps(MIXED[0]) + "\n\n" + json.dumps({"prompt": "c"}) + "\n")
    streamed = encode_training_dataset(load_training_dataset(path, streaming=True), encoder, source=str(path))
    with pytest.raises(ValueError, match=r"data.jsonl:3 \(row 1\), column 'response': no response"):
        list(streamed)


def test_unreadable_data_files_name_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "caf\xe9", "response": "b"}\n')
    with pytest.raises(ValueError, match=r"data.jsonl:2: not UTF-8 text \(byte 0xe9 at column 16\)"):
        load_training_dataset(path)
    path.write_text('{"prompt": "a", "response": "b"}\nnot json\n')
    with pytest.raises(ValueError, match=r"data.jsonl:2: not valid JSON"):
        load_training_dataset(path)
    path.write_text('{"prompt": "a", "response": "b"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"data.jsonl:2: each line must be a JSON object"):
        load_training_dataset(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_training_dataset(tmp_path / "missing.jsonl")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown data file type '.txt'"):
        load_training_dataset(tmp_path / "data.txt")


def test_editing_record_from_codes_uses_the_guidance_branches(tiny):
    from transformers_llada_uni.prompting_llada_uni import build_editing_prompts

    model, tokenizer = tiny
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    offset = model.config.image_token_offset
    source = [[(r * 8 + c) % 64 for c in range(8)] for r in range(8)]
    edited = [[(r + c) % 64 for c in range(8)] for r in range(8)]
    example = encoder.encode({"instruction": "make it blue", "source_codes": source, "edited_codes": edited})
    full, no_text, no_image = build_editing_prompts(
        tokenizer, [c + offset for row in source for c in row], 8, 8, "make it blue"
    )
    assert example.prompt_ids == full
    assert example.dropout_prompts == {"no_text": no_text, "no_image": no_image}
    assert example.response_ids == [c + offset for row in edited for c in row]
    with pytest.raises(ValueError, match="differs from the source grid"):
        encoder.encode({"instruction": "x", "source_codes": source, "edited_codes": [[1] * 10] * 8})


def test_picture_records_go_through_the_image_tokenizer(tiny, tiny_released_dir, images_dir):
    from transformers_llada_uni import LLaDAUniImageVQModel, LLaDAUniProcessor

    model, tokenizer = tiny
    image_tokenizer = LLaDAUniImageVQModel.from_pretrained(tiny_released_dir / "image_tokenizer").eval()
    processor = LLaDAUniProcessor.from_pretrained(tiny_released_dir)
    picture = sorted(images_dir.glob("*.png"))[0]
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config, image_tokenizer=image_tokenizer, processor=processor,
                                          base_dir=str(picture.parent))
    example = encoder.encode({"prompt": "a picture", "image": picture.name})
    expected = processor.encode_images(str(picture), image_tokenizer, mode="edit_resize_crop")
    assert example.response_ids == expected["image_tokens"]
    h, w = expected["h"], expected["w"]
    assert example.prompt_ids[-3:-1] == [
        tokenizer.convert_tokens_to_ids(f"<|reserved_token_{h}|>"), tokenizer.convert_tokens_to_ids(f"<|reserved_token_{w}|>")
    ]
    edit = encoder.encode({"instruction": "flip it", "source_image": str(picture), "edited_image": str(picture)})
    reference_crop = processor.encode_images(str(picture), image_tokenizer, mode="edit")
    assert edit.response_ids == reference_crop["image_tokens"]
