import pytest
import torch
from tiny_recipes import TINY_GAN_CONFIG
from tolerances import AFTER_RELOAD
from transformers import AutoModel

import hf_genxfer  # noqa: F401
from hf_genxfer.models.gan import GANConfig, GANModel, GANPipeline

TINY = TINY_GAN_CONFIG
TASKS = ["low", "high", "odd"]


@pytest.mark.parametrize("shared_blocks", [0, 1, 3, None])
@pytest.mark.parametrize("num_classes", [None, 4])
def test_routing_sends_each_task_through_its_own_head_only(shared_blocks, num_classes):
    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, task_names=TASKS, shared_blocks=shared_blocks, num_classes=num_classes))
    labels = None if num_classes is None else torch.tensor([0, 1, 2, 3])
    task = ["low", "low", "odd", "low"]
    images = model(torch.randn(4, 8), class_labels=labels, task=task).images
    logits = model.discriminator(images, class_labels=labels, task=task).logits
    assert images.shape == (4, 1, 16, 16) and logits.shape == (4,)
    (images.sum() + logits.sum()).backward()
    for part in (model.generator, model.discriminator):
        if not hasattr(part, "task_heads"):
            continue
        for name, head in part.task_heads.items():
            grads = [p.grad for p in head.parameters()]
            if name == "high":
                assert all(g is None or not g.any() for g in grads), name
            else:
                assert any(g is not None and g.any() for g in grads), name
    if shared_blocks is None:
        assert hasattr(model.generator, "task_embedding") and not hasattr(model.generator, "task_heads")


def test_mixed_batch_equals_per_task_batches():
    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, task_names=TASKS, shared_blocks=1)).eval()
    latents = torch.randn(4, 8)
    mixed = model(latents, task=["low", "high", "low", "odd"]).images
    for i, task in enumerate(["low", "high", "low", "odd"]):
        torch.testing.assert_close(mixed[i : i + 1], model(latents[i : i + 1], task=task).images)


def test_round_trip_keeps_every_task_and_the_pipeline_samples_by_name(tmp_path):
    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, task_names=TASKS, shared_blocks=2)).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m").eval()
    latents = torch.randn(3, 8)
    for task in TASKS:
        torch.testing.assert_close(loaded(latents, task=task).images, model(latents, task=task).images, **AFTER_RELOAD)
    pipe = GANPipeline(generator_model=model.generator)
    pipe.save_pretrained(tmp_path / "p")
    pipe = GANPipeline.from_pretrained(tmp_path / "p")
    a = pipe(batch_size=2, task="odd", generator=torch.Generator().manual_seed(0), output_type="pt").images
    b = pipe(batch_size=2, task="low", generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert a.shape == (2, 1, 16, 16) and not torch.equal(a, b)


def test_task_errors():
    model = GANModel(GANConfig(**TINY, task_names=TASKS, shared_blocks=1))
    with pytest.raises(ValueError, match="pass task= one of low, high, odd"):
        model(torch.randn(2, 8))
    with pytest.raises(ValueError, match="Unknown task 'mid'"):
        model(torch.randn(2, 8), task="mid")
    with pytest.raises(ValueError, match="single-task"):
        GANModel(GANConfig(**TINY))(torch.randn(2, 8), task="low")
    with pytest.raises(ValueError, match="shared_blocks must be an integer from 0 to 3"):
        GANConfig(**TINY, task_names=TASKS, shared_blocks=4)
    with pytest.raises(ValueError, match="at least two unique"):
        GANConfig(**TINY, task_names=["a", "a"])
    with pytest.raises(ValueError, match="needs task_names"):
        GANConfig(**TINY, shared_blocks=1)
