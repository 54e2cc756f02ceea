"""L2-SP and EWC: zero at the source weights, growing away from them, differentiable; Fisher estimation and files."""

import pytest
import torch
from torch import nn

from hf_genxfer.transfer import EWC, L2SP, estimate_fisher, freeze, load_fisher, save_fisher


def move_all(model, directions, step):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in directions:
                parameter.add_(directions[name] * step)


def random_directions(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(p.shape, generator=generator) for name, p in model.named_parameters()}


def test_l2sp_is_zero_at_the_source_and_grows_away_from_it(gan_factory):
    model = gan_factory(num_classes=3)
    l2sp = L2SP(model, weight=0.1)
    # Spectral-normed weights are regularised through the parameter the optimizer moves.
    assert "discriminator.head.parametrizations.weight.original" in l2sp.names
    assert l2sp.penalty().item() == 0.0

    directions = random_directions(model)
    squared_norm = sum(d.pow(2).sum() for d in directions.values())
    penalties = []
    for _ in range(4):
        move_all(model, directions, 0.1)
        penalties.append(l2sp.penalty())
    assert all(a < b for a, b in zip(penalties, penalties[1:]))
    torch.testing.assert_close(penalties[-1], 0.1 / 2 * 0.4**2 * squared_norm, rtol=1e-4, atol=0)

    penalties[-1].backward()  # gradient of weight/2 ||theta - theta0||^2 is weight * (theta - theta0)
    mapping = model.generator.mapping.weight
    torch.testing.assert_close(mapping.grad, 0.1 * 0.4 * directions["generator.mapping.weight"], rtol=1e-4, atol=1e-6)


def test_l2sp_with_a_source_state_include_and_frozen_parameters(gan_factory):
    source = gan_factory(seed=0, num_classes=3)
    model = gan_factory(seed=1, num_classes=5)
    freeze(model, "discriminator.*")
    l2sp = L2SP(model, source_state=source.state_dict(), weight=1.0, include=["generator.*"])
    assert all(name.startswith("generator.") for name in l2sp.names)
    assert l2sp.skipped == {"generator.class_embedding.weight": "shape (3, 32) in source vs (5, 32) in the model"}
    expected = sum(
        (dict(model.named_parameters())[name] - source.state_dict()[name]).pow(2).sum() for name in l2sp.names
    )
    torch.testing.assert_close(l2sp.penalty(), expected / 2)

    # At the source weights the penalty vanishes.
    with torch.no_grad():
        for name in l2sp.names:
            dict(model.named_parameters())[name].copy_(source.state_dict()[name])
    assert l2sp().item() == 0.0
    with pytest.raises(ValueError, match="match no trainable parameter"):
        L2SP(model, include=["discriminator.*"])


def test_fisher_estimate_is_the_mean_squared_gradient():
    model = nn.Linear(3, 1, bias=False)
    batches = [torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[3.0, 0.0, -1.0]])]

    def loss_fn(model, batch):
        return model(batch).sum()  # gradient w.r.t. the weight: the batch itself

    fisher = estimate_fisher(model, loss_fn, batches)
    assert list(fisher) == ["weight"]
    torch.testing.assert_close(fisher["weight"], torch.tensor([[5.0, 2.0, 0.5]]))
    assert model.weight.grad is None  # the parameters' .grad are left alone
    with pytest.raises(ValueError, match="empty"):
        estimate_fisher(model, loss_fn, [])


def test_fisher_on_a_seq2seq_model_and_its_file(tmp_path, seq2seq_factory, batch_factory):
    model = seq2seq_factory("t5")
    fisher = estimate_fisher(model, lambda m, b: m(**b).loss, [batch_factory(seed=s) for s in range(2)])
    parameters = dict(model.named_parameters())
    assert set(fisher) == set(parameters)
    for name, value in fisher.items():
        assert value.shape == parameters[name].shape and bool((value >= 0).all()), name
    assert any(bool((value > 0).any()) for value in fisher.values())

    only = estimate_fisher(model, lambda m, b: m(**b).loss, [batch_factory()], parameters=["backbone.decoder.*"])
    assert only and all(name.startswith("backbone.decoder.") for name in only)

    save_fisher(fisher, tmp_path / "fisher.safetensors")
    loaded = load_fisher(tmp_path / "fisher.safetensors")
    assert set(loaded) == set(fisher)
    assert all(torch.equal(loaded[name], fisher[name]) for name in fisher)


def test_ewc_is_zero_at_the_source_and_grows_away_from_it(gan_factory):
    model = gan_factory()
    images = torch.rand(4, 1, 8, 8) * 2 - 1

    def loss_fn(model, batch):
        return model.discriminator(batch).logits.pow(2).mean()

    fisher = estimate_fisher(model, loss_fn, [images, images.flip(0)], parameters=["discriminator.*"])
    ewc = EWC(model, fisher, weight=2.0)
    assert set(ewc.names) == set(fisher)
    assert ewc.penalty().item() == 0.0

    directions = random_directions(model)
    penalties = []
    for _ in range(3):
        move_all(model, directions, 0.05)
        penalties.append(ewc.penalty())
    assert all(a < b for a, b in zip(penalties, penalties[1:]))
    expected = sum((fisher[name] * (directions[name] * 0.15).pow(2)).sum() for name in fisher)
    torch.testing.assert_close(penalties[-1], 2.0 / 2 * expected, rtol=1e-4, atol=0)
    penalties[-1].backward()
    assert model.discriminator.from_image.parametrizations.weight.original.grad is not None
    assert model.generator.mapping.weight.grad is None  # no Fisher information, no penalty


def test_ewc_rejects_misshaped_fisher(gan_factory):
    model = gan_factory()
    with pytest.raises(ValueError, match="Fisher information for generator.to_image.bias has shape"):
        EWC(model, {"generator.to_image.bias": torch.ones(3)})
