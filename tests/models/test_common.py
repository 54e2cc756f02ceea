"""The checks every model runs, over one table of tiny models of both families (transformers' common tests, in
small): save/load through the Auto classes, determinism, cached decoding, a PEFT LoRA adapter, bfloat16."""

import pytest
import torch
from tiny_recipes import MODEL_CASES, TINY_BACKBONES, TINY_GAN_CONFIG, TINY_VOCAB_SIZE
from tolerances import AFTER_RELOAD
from transformers import AutoModel

import hf_genxfer  # noqa: F401  (registers the Auto classes)
from hf_genxfer.models.gan import GANConfig, GANModel
from hf_genxfer.models.seq2seq import Seq2SeqConfig, Seq2SeqModel


def build(case: str, seed: int = 0):
    family, fields = MODEL_CASES[case]
    torch.manual_seed(seed)
    if family == "gan":
        return GANModel(GANConfig(**TINY_GAN_CONFIG, **fields)).eval()
    fields = dict(fields)
    backbone = dict(TINY_BACKBONES[fields.pop("backbone")])
    return Seq2SeqModel(Seq2SeqConfig(backbone=backbone, **fields)).eval()


def inputs(model, generator_seed: int = 0) -> dict:
    """A forward pass's inputs for the model of a case (a task for multi-task models)."""
    noise = torch.Generator().manual_seed(generator_seed)
    config = model.config
    task = {"task": config.task_names[0]} if len(config.task_names or []) > 1 else {}
    if isinstance(model, GANModel):
        labels = None if config.num_classes is None else torch.tensor([0, 1, 2, 3]) % config.num_classes
        return {"latents": model.generator.sample_latents(4, generator=noise), "class_labels": labels, **task}
    ids = torch.randint(3, TINY_VOCAB_SIZE, (2, 7), generator=noise)
    return {"input_ids": ids, "labels": torch.randint(3, TINY_VOCAB_SIZE, (2, 5), generator=noise), **task}


def output(model, batch) -> torch.Tensor:
    result = model(**batch)
    return result.images if isinstance(model, GANModel) else result.logits


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_round_trip_through_the_auto_classes(case, tmp_path):
    model = build(case)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    batch = inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(output(loaded, batch), output(model, batch), **AFTER_RELOAD)
    for key, value in model.state_dict().items():  # the stored tensors themselves are identical
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_the_same_seed_builds_the_same_model(case):
    a, b, c = build(case, seed=0), build(case, seed=0), build(case, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    batch = inputs(a)
    with torch.no_grad():
        torch.testing.assert_close(output(a, batch), output(b, batch), rtol=0, atol=0)


@pytest.mark.parametrize("case", [case for case, (family, _) in MODEL_CASES.items() if family == "seq2seq"])
def test_cached_decoding_equals_uncached(case):
    model = build(case)
    batch = inputs(model)
    task = {"task": batch["task"]} if "task" in batch else {}
    kwargs = dict(input_ids=batch["input_ids"], max_new_tokens=5, min_new_tokens=5, **task)
    assert torch.equal(model.generate(**kwargs, use_cache=True), model.generate(**kwargs, use_cache=False))


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_a_lora_adapter_starts_as_the_identity_and_trains(case):
    from hf_genxfer.transfer import apply_lora, lora_config_for

    model = build(case)
    batch = inputs(model)
    with torch.no_grad():
        before = output(model, batch).clone()
    peft_model = apply_lora(model, lora_config_for(model, r=2, alpha=4))
    with torch.no_grad():
        torch.testing.assert_close(output(peft_model.base_model.model, batch), before, rtol=0, atol=0)
    trainable = [p for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" in n]
    assert trainable
    output(peft_model.base_model.model, batch).float().pow(2).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bfloat16_runs(case):
    model = build(case).to(torch.bfloat16)
    batch = inputs(model)
    batch = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}
    with torch.no_grad():
        result = output(model, batch)
    assert result.dtype == torch.bfloat16 and torch.isfinite(result.float()).all()
