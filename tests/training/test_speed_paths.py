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


@pytest.mark.slow  # the first compiled call compiles (~10 s on 2 cores): run with `pytest -m slow`
def test_compiled_generation_gives_the_eager_tokens():
    """generate(compile=True): a static cache and compiled decoding steps, on the CPU too, with the same greedy tokens
    as eager decoding; beam search stays eager, with a warning, and the caller's arguments win."""
    from transformers import BartConfig, BartForConditionalGeneration

    from hf_genxfer.models.seq2seq import Seq2SeqModel
    from hf_genxfer.models.seq2seq.task_parts import compiled_decoding

    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=60, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
    )  # fmt: skip
    model = Seq2SeqModel.from_backbone(BartForConditionalGeneration(config)).eval()
    inputs = torch.randint(4, 60, (3, 7))
    settings = dict(max_new_tokens=12, min_new_tokens=12, do_sample=False)
    eager = model.generate(inputs, **settings)
    compiled = model.generate(inputs, compile=True, **settings)
    assert torch.equal(compiled, eager)
    assert getattr(model.backbone, "_compiled_call", None) is not None  # transformers did compile the decoding step
    assert compiled_decoding(model, {"cache_implementation": "dynamic"})["cache_implementation"] == "dynamic"
    with pytest.warns(UserWarning, match="beam search runs eagerly"):
        beams = model.generate(inputs, compile=True, num_beams=2, **settings)
    assert torch.equal(beams, model.generate(inputs, num_beams=2, **settings))
