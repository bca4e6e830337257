"""transformers.Trainer with the masked-diffusion objective: trains, evaluates, saves a loadable adapter; checkpoints
without pickle; a resumed run gives exactly the losses of an uninterrupted one; every refusal of a bad resume."""

import json
import os
import shutil

import datasets
import pytest
import torch
from peft import PeftModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, set_seed

import transformers_llada_uni
from transformers_llada_uni import (
    DataCollatorForMaskedDiffusion,
    LLaDAUniTrainingDataEncoder,
    MaskedDiffusionConfig,
    encode_training_dataset,
    get_llada_uni_peft_model,
    masked_diffusion_loss,
)
from transformers_llada_uni.training_peft_llada_uni import DEFAULT_LORA_TARGET_MODULES

from conftest import TINY_RELEASED


pytestmark = pytest.mark.usefixtures("single_thread")

RECORDS = [
    {"prompt": "What colour is the sky?", "response": "Blue on a clear day."},
    {"prompt": "Name a prime number.", "response": "Seven is prime."},
    {"prompt": "Capital of France?", "response": "Paris."},
    {"prompt": "Say hello.", "response": "Hello, world!"},
]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")


def _parts(base=TINY_RELEASED, seed=0, lora=True):
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(TINY_RELEASED)
    model = AutoModelForCausalLM.from_pretrained(base)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
    dataset = encode_training_dataset(RECORDS, encoder)
    objective = MaskedDiffusionConfig(block_length=8, noise_range=(0.3, 1.0))
    collator = DataCollatorForMaskedDiffusion(encoder.special, objective, model_config=model.config, seed=seed)
    if lora:
        model = get_llada_uni_peft_model(model, r=8, target_modules=DEFAULT_LORA_TARGET_MODULES + r"|lm_head")
    return model, dataset, collator, objective


def _args(output_dir, **overrides):
    settings = dict(
        output_dir=str(output_dir), max_steps=4, per_device_train_batch_size=2, learning_rate=1e-2,
        lr_scheduler_type="linear", logging_steps=1, save_steps=2, report_to=[], seed=0, disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


def _trainer(output_dir, parts=None, **overrides):
    model, dataset, collator, _ = parts or _parts()
    return transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer(
        model=model, args=_args(output_dir, **overrides), train_dataset=dataset, data_collator=collator
    )


def _losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_trainer_trains_evaluates_and_saves_an_adapter(tmp_path):
    # Imported the way users do: the package loads the Trainer stack on first use only.
    trainer_class = transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer
    model, dataset, collator, objective = _parts()
    args = _args(tmp_path / "run", max_steps=30, per_device_train_batch_size=4, per_device_eval_batch_size=4,
                 save_steps=30)
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, eval_dataset=dataset, data_collator=collator)
    assert trainer.objective.block_length == 8 and trainer.objective.noise_range == (0.3, 1.0)

    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    losses = _losses(trainer)
    assert len(losses) == 30 and all(loss == loss for loss in losses)
    assert after < 0.5 * before, (before, after)

    # The trainer's loss is the library's: one batch through both.
    batch = DataCollatorForMaskedDiffusion(collator.special, objective, seed=7)([dataset[i] for i in range(4)])
    model.eval()
    with torch.no_grad():
        expected = masked_diffusion_loss(model, batch, objective).loss
        assert torch.allclose(trainer.compute_loss(model, batch), expected)

    checkpoint = tmp_path / "run" / "checkpoint-30"
    names = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_model.safetensors", "optimizer.safetensors", "rng_state.safetensors", "scheduler.json",
            "trainer_state.json", "training_args.json", "llada_uni_checkpoint.json"} <= names
    assert not [p for p in (tmp_path / "run").rglob("*") if p.suffix in PICKLE_SUFFIXES]
    trainer.save_model(str(tmp_path / "adapter"))
    base = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    ids = batch["input_ids"][:1]
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)


def test_trainer_needs_the_collator_and_encoded_rows(tmp_path):
    model, dataset, collator, _ = _parts(lora=False)
    args = _args(tmp_path)
    with pytest.raises(TypeError, match="DataCollatorForMaskedDiffusion"):
        transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer(
            model=model, args=args, train_dataset=dataset, data_collator=lambda features: features
        )
    with pytest.raises(TypeError, match="not encoded examples; encode it with `encode_training_dataset"):
        transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer(
            model=model, args=args, train_dataset=datasets.Dataset.from_list(RECORDS), data_collator=collator
        )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A 4-step LoRA run with checkpoints at steps 2 and 4: the reference for resuming and for the refusals."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    trainer = _trainer(out)
    trainer.train()
    return out, _losses(trainer), load_file(str(out / "checkpoint-4" / "adapter_model.safetensors"))


def _interrupted_copy(uninterrupted, tmp_path):
    """The run as if stopped after step 2: checkpoint-2 only (and a half-written checkpoint-3)."""
    out = tmp_path / "run"
    shutil.copytree(uninterrupted[0], out)
    shutil.rmtree(out / "checkpoint-4")
    (out / "checkpoint-3").mkdir()
    (out / "checkpoint-3" / "adapter_model.safetensors").write_bytes(b"half written")
    return out


def test_resumed_run_gives_exactly_the_uninterrupted_losses(uninterrupted, tmp_path):
    out = _interrupted_copy(uninterrupted, tmp_path)
    trainer = _trainer(out)
    trainer.train(resume_from_checkpoint=True)  # the newest complete checkpoint: checkpoint-2, not checkpoint-3
    assert _losses(trainer) == uninterrupted[1]
    resumed = load_file(str(out / "checkpoint-4" / "adapter_model.safetensors"))
    assert resumed.keys() == uninterrupted[2].keys()
    assert all(torch.equal(resumed[k], uninterrupted[2][k]) for k in resumed)


def test_a_new_run_refuses_a_folder_with_checkpoints_unless_overwriting(uninterrupted, tmp_path):
    out = _interrupted_copy(uninterrupted, tmp_path)
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run .*resume it .*overwrite it"):
        _trainer(out).train()
    model, dataset, collator, _ = _parts()
    trainer = transformers_llada_uni.LLaDAUniMaskedDiffusionTrainer(
        model=model, args=_args(out, max_steps=2), train_dataset=dataset, data_collator=collator,
        overwrite_output_dir=True,
    )
    trainer.train()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-2"]


def _edit_safetensors(path, edit_tensors=None, edit_metadata=None):
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    tensors = load_file(str(path))
    if edit_tensors:
        tensors = edit_tensors(tensors)
    if edit_metadata:
        metadata = edit_metadata(metadata)
    save_file(tensors, str(path), metadata=metadata)


def _drop_half(tensors):
    return dict(sorted(tensors.items())[: len(tensors) // 2])


def _add_one(tensors):
    return {**tensors, "base_model.model.model.layers.0.attention.dense.lora_A.extra": torch.zeros(2, 2)}


def _lr_1000(metadata):
    groups = json.loads(metadata["param_groups"])
    groups[0]["lr"] = 1000.0
    return {**metadata, "param_groups": json.dumps(groups)}


def _damage(checkpoint, kind):
    if kind == "adapter missing tensors":
        _edit_safetensors(checkpoint / "adapter_model.safetensors", edit_tensors=_drop_half)
    elif kind == "adapter extra tensors":
        _edit_safetensors(checkpoint / "adapter_model.safetensors", edit_tensors=_add_one)
    elif kind == "truncated adapter":
        data = (checkpoint / "adapter_model.safetensors").read_bytes()
        (checkpoint / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    elif kind == "edited learning rate":
        _edit_safetensors(checkpoint / "optimizer.safetensors", edit_metadata=_lr_1000)
    elif kind == "trainer state without step":
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        del state["global_step"]
        (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    elif kind == "random state without torch":
        _edit_safetensors(checkpoint / "rng_state.safetensors", edit_tensors=lambda t: {"numpy_keys": t["numpy_keys"]})
    elif kind == "unfinished checkpoint":
        (checkpoint / "llada_uni_checkpoint.json").unlink()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("adapter missing tensors", r"The adapter in .*checkpoint-2 lacks \d+ tensor\(s\) this run's adapter has"),
        ("adapter extra tensors", r"The adapter in .*checkpoint-2 holds 1 tensor\(s\) this run's adapter does not have"),
        ("truncated adapter", r"adapter_model.safetensors cannot be read as the adapter \(truncated or not safetensors"),
        ("edited learning rate", r"optimizer state in .* has learning rate 1000.0 \(group 0\) but its scheduler was at"),
        ("trainer state without step", r"trainer_state.json has no global_step"),
        ("random state without torch", r"rng_state.safetensors is not a random-generator state"),
        ("unfinished checkpoint", r"has no llada_uni_checkpoint.json: it is unfinished"),
    ],
)
def test_resume_refuses_a_damaged_checkpoint(uninterrupted, tmp_path, kind, message):
    out = _interrupted_copy(uninterrupted, tmp_path)
    _damage(out / "checkpoint-2", kind)
    with pytest.raises(ValueError, match=message):
        _trainer(out).train(resume_from_checkpoint=str(out / "checkpoint-2"))


def test_resume_refuses_other_settings(uninterrupted, tmp_path):
    out = _interrupted_copy(uninterrupted, tmp_path)
    checkpoint = str(out / "checkpoint-2")
    with pytest.raises(ValueError, match=r"global batch of 2 \(1 process\(es\) x 2 x 1 accumulation step\(s\)\); this "
                                         r"run's is 4 \(1 x 4 x 1\)"):
        _trainer(out, per_device_train_batch_size=4).train(resume_from_checkpoint=checkpoint)
    # the same global batch in other pieces is fine for the data position; the optimizer settings are not
    with pytest.raises(ValueError, match=r"has initial_lr=0.01 \(group 0\), this run has 0.02: resume with the settings"):
        _trainer(out, learning_rate=2e-2).train(resume_from_checkpoint=checkpoint)
    with pytest.raises(ValueError, match=r"has weight_decay=0.0 \(group 0\), this run has 0.1"):
        _trainer(out, weight_decay=0.1).train(resume_from_checkpoint=checkpoint)
    with pytest.raises(ValueError, match="holds a trained adapter, this run trains a model"):
        _trainer(out, parts=_parts(lora=False)).train(resume_from_checkpoint=checkpoint)
    # another rank of adapter: other tensor shapes
    model, dataset, collator, _ = _parts(lora=False)
    other = get_llada_uni_peft_model(model, r=4, target_modules=DEFAULT_LORA_TARGET_MODULES + r"|lm_head")
    with pytest.raises(ValueError, match=r"has .*lora_A.weight of shape \(8, \d+\), this run's is \(4, \d+\)"):
        _trainer(out, parts=(other, dataset, collator, None)).train(resume_from_checkpoint=checkpoint)


def test_resume_refuses_a_checkpoint_of_another_base_model(uninterrupted, tmp_path):
    out = _interrupted_copy(uninterrupted, tmp_path)
    other_base = tmp_path / "other-base"
    model = AutoModelForCausalLM.from_pretrained(TINY_RELEASED)
    model.config.routed_scaling_factor = 1.5  # same shapes, another model
    model.save_pretrained(other_base)
    with pytest.raises(ValueError, match=r"was trained from another base model \(.*tiny-llada2-uni, configuration "
                                         r"identity [0-9a-f]+\); this run's is .*other-base"):
        _trainer(out, parts=_parts(base=other_base)).train(resume_from_checkpoint=str(out / "checkpoint-2"))
