"""Cross-domain correspondence (CDC): zero for an unchanged generator, positive and differentiable once it moves,
its source copy frozen and untouched by training, and the recipe field checked."""

import pytest
import torch
from tiny_recipes import tiny_gan_recipe

from hf_genxfer.errors import RecipeError
from hf_genxfer.models.gan import GANModel
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.loop import train
from hf_genxfer.transfer.correspondence import CrossDomainCorrespondence, similarity_distributions


def test_similarity_distributions_leave_each_sample_out():
    features = torch.randn(5, 3, 2, 2)
    log_probs = similarity_distributions(features)
    assert log_probs.shape == (5, 4)
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(5))


@pytest.mark.parametrize("style_mapping_layers", [0, 1])
def test_cdc_is_zero_for_the_source_and_grows_as_the_generator_moves(gan_factory, style_mapping_layers):
    generator = gan_factory(num_classes=4, style_mapping_layers=style_mapping_layers).generator
    cdc = CrossDomainCorrespondence(generator, weight=10.0, batch_size=6)
    latents, labels = cdc.sample(torch.Generator().manual_seed(0), "cpu")
    assert labels is not None and labels.shape == (6,) and int(labels.max()) < 4
    assert cdc(generator, latents, labels).item() == pytest.approx(0.0, abs=1e-6)

    with torch.no_grad():
        for parameter in generator.blocks[-1].parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    loss = cdc(generator, latents, labels)
    assert float(loss) > 0
    loss.backward()
    assert generator.blocks[-1].convs[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in cdc.source.parameters())


def test_cdc_weight_and_batch_are_checked(gan_factory):
    generator = gan_factory().generator
    with pytest.raises(ValueError, match="CDC weight must be positive"):
        CrossDomainCorrespondence(generator, weight=0.0)
    with pytest.raises(ValueError, match="at least 3 latents"):
        CrossDomainCorrespondence(generator, weight=1.0, batch_size=2)


def test_a_cdc_run_trains_logs_the_loss_and_keeps_its_source_copy(tmp_path, monkeypatch):
    source = tiny_gan_recipe(tmp_path / "source", max_steps=2)
    train(validate_recipe(source))
    raw = tiny_gan_recipe(tmp_path / "cdc", max_steps=3)
    raw["init_from"] = source["output_dir"]
    raw["model"] = {}
    raw["data"] = {"dataset": "digits", "classes": [5, 6, 7], "shots_per_class": 4, "held_out_fraction": 0.2}
    raw["transfer"] = {"cdc_weight": 100.0, "cdc_batch_size": 4}
    from hf_genxfer.training.gan import GANRun  # the run object, to look at its CDC module after training

    seen = {}
    original = GANRun.training_step

    def spy(self, batch_number):
        losses = original(self, batch_number)
        seen.setdefault("cdc", []).append(float(losses["cdc"]))
        seen["run"] = self
        return losses

    monkeypatch.setattr(GANRun, "training_step", spy)
    train(validate_recipe(raw))
    assert len(seen["cdc"]) == 3 and seen["cdc"][0] == pytest.approx(0.0, abs=1e-6) and seen["cdc"][-1] > 0
    source_model = GANModel.from_pretrained(source["output_dir"])
    copy = seen["run"].cdc.source.state_dict()
    for name, tensor in source_model.generator.state_dict().items():
        torch.testing.assert_close(copy[name], tensor, rtol=1e-5, atol=1e-6)
    trained = GANModel.from_pretrained(raw["output_dir"]).generator.state_dict()
    assert any(not torch.allclose(trained[n], t) for n, t in source_model.generator.state_dict().items())


def test_cdc_needs_a_single_task_gan_source(tmp_path):
    raw = tiny_gan_recipe(tmp_path / "run")
    raw["transfer"] = {"cdc_weight": 1.0}
    with pytest.raises(RecipeError, match="transfer.cdc_weight needs a source model"):
        validate_recipe(raw)
    raw["init_from"] = str(tmp_path / "source")
    raw["data"]["tasks"] = {"low": {"classes": [0, 1]}, "high": {"classes": [2, 3]}}
    with pytest.raises(RecipeError, match="transfer.cdc_weight is for single-task GANs"):
        validate_recipe(raw)
