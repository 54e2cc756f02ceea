"""The speed paths of the loop: the EMA update, the optimizer kernels and the options a recipe turns on."""

import copy

import pytest
import torch
from diffusers.training_utils import EMAModel

from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.ema import GeneratorEMA
from hf_genxfer.training.loop import train


def test_generator_ema_updates_like_diffusers_ema_model():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    net[1].bias.requires_grad_(False)  # frozen tensors are copied, not averaged
    ours, theirs = GeneratorEMA(net.parameters(), decay=0.9), EMAModel(net.parameters(), decay=0.9)
    for _ in range(5):
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(torch.randn_like(parameter))
        ours.step(list(net.parameters()))
        theirs.step(net.parameters())
    for a, b in zip(ours.shadow_params, theirs.shadow_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ours.state_dict().keys() == theirs.state_dict().keys()  # checkpoints keep diffusers' format


@pytest.mark.parametrize("implementation", ["for_loop", "foreach", "fused"])
def test_optimizer_implementations_train_alike(gan_recipe_factory, implementation):
    """Every kernel choice trains the same GAN to within float tolerance of torch's own choice."""
    reference = train(validate_recipe(gan_recipe_factory("auto", max_steps=3)))
    other = train(
        validate_recipe(gan_recipe_factory(implementation, max_steps=3, optimizer_implementation=implementation))
    )
    assert other["step"] == reference["step"] == 3
    assert other["fid"] == pytest.approx(reference["fid"], rel=1e-3)


def test_channels_last_gan_trains_like_the_default(gan_recipe_factory):
    reference = train(validate_recipe(gan_recipe_factory("default", max_steps=3)))
    other = train(validate_recipe(gan_recipe_factory("channels-last", max_steps=3, channels_last=True)))
    assert other["fid"] == pytest.approx(reference["fid"], rel=1e-3)


def test_group_by_length_is_for_single_task_runs(seq2seq_recipe_factory):
    from hf_genxfer.errors import RecipeError

    raw = seq2seq_recipe_factory(max_steps=1, group_by_length=True)
    raw["model"].update(sharing="shared_encoder", task_names=["en", "fr"])
    raw["data"]["tasks"] = {"en": {"language": "en"}, "fr": {"language": "fr"}}
    with pytest.raises(RecipeError, match="group_by_length applies to single-task runs"):
        train(validate_recipe(copy.deepcopy(raw)))


@pytest.mark.slow  # compiling takes ~45 s on 2 cores: run with `pytest -m slow`
def test_compiled_gan_trains_like_the_eager_one(gan_recipe_factory):
    reference = train(validate_recipe(gan_recipe_factory("eager", max_steps=5)))
    compiled = train(validate_recipe(gan_recipe_factory("compiled", max_steps=5, compile=True)))  # R1 at step 1 and 5
    assert compiled["fid"] == pytest.approx(reference["fid"], rel=1e-3)
