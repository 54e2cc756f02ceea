"""`genxfer push` and `push_to_hub` against a local Hub-compatible upload endpoint (no real Hub)."""

import importlib
import os

import pytest
import yaml
from hub_upload_server import HubUploadServer
from tiny_recipes import tiny_gan_recipe

from hf_genxfer.cli import main
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.loop import train


@pytest.fixture
def hub():
    import huggingface_hub.constants

    with HubUploadServer() as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", server.endpoint)
        patch.setenv("HF_HUB_OFFLINE", "0")
        patch.setenv("HF_TOKEN", "hf_local_test_token")
        importlib.reload(huggingface_hub.constants)  # the endpoint is read at import time
        yield server
    importlib.reload(huggingface_hub.constants)  # back to the test session's own environment


def test_genxfer_push_uploads_the_run_without_resume_state(tmp_path, hub, capsys):
    raw = tiny_gan_recipe(tmp_path / "run", max_steps=2)
    train(validate_recipe(raw))
    assert main(["push", raw["output_dir"], "me/tiny-digits-gan", "--private"]) == 0
    assert "Pushed" in capsys.readouterr().out
    repo = hub.repos["me/tiny-digits-gan"]
    assert repo["private"] is True
    files = repo["files"]
    for name in (
        "config.json",
        "model.safetensors",
        "model_index.json",
        "generator_model/model.safetensors",
        "README.md",
        "samples.png",
        "training_curve.png",
        "metrics.json",
        "genxfer_recipe.yaml",
    ):
        assert name in files, name
    assert not any(path.startswith(("checkpoints/", "logs/")) for path in files)
    card = files["README.md"].decode()
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["library_name"] == "hf_genxfer"
    assert 'AutoModel.from_pretrained("me/tiny-digits-gan")' in card  # usage names the repository
    assert files["model.safetensors"] == open(os.path.join(raw["output_dir"], "model.safetensors"), "rb").read()


def test_push_to_hub_on_the_model(tmp_path, hub):
    from hf_genxfer import GANConfig, GANModel

    model = GANModel(GANConfig(image_size=8, base_width=8, max_width=16, layers_per_block=1, latent_size=8))
    model.push_to_hub("me/raw-gan")
    assert {"config.json", "model.safetensors"} <= set(hub.repos["me/raw-gan"]["files"])


def test_push_of_a_missing_folder_is_one_sentence(tmp_path, capsys):
    assert main(["push", str(tmp_path / "nothing"), "me/x"]) == 2
    assert "No model folder at" in capsys.readouterr().err
