"""
The Hub in both directions against a real Hub-compatible server on 127.0.0.1: `scripts/local_hub.py` serves
downloads with the `olah` mirror (from .venv-olah, set up by `make test`) and commits uploads into its repositories.
Run folders are pushed with `genxfer push`, a transfer starts from a Hub id, and a fresh process loads everything
back with `from_pretrained("org/name")`: models, the pipeline, the tokenizer and the LoRA adapter.
"""

import importlib
import json
import os
import subprocess
import sys

import pytest
import yaml
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.cli import main
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.loop import train

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from local_hub import LocalHub  # noqa: E402


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    with LocalHub(str(tmp_path_factory.mktemp("local_hub"))) as hub:
        yield hub


@pytest.fixture
def hub_env(local_hub, tmp_path):
    """This process talks to the local Hub, with an empty cache; the test session's settings come back after."""
    import huggingface_hub.constants

    env = {
        "HF_ENDPOINT": local_hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_local_test_token",
        "HF_HUB_CACHE": str(tmp_path / "hf_cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        importlib.reload(huggingface_hub.constants)  # the endpoint and cache are read at import time
        yield env
    importlib.reload(huggingface_hub.constants)


def _load_back(env: dict, tmp_path, code: str) -> dict:
    """Runs `code` in a fresh process with a fresh cache (nothing but the local Hub to load from); returns `result`."""
    out = tmp_path / "result.json"
    script = (
        "import json, torch\ntorch.set_num_threads(1)\nimport hf_genxfer\nresult = {}\n"
        + code
        + f"\njson.dump(result, open({str(out)!r}, 'w'))\n"
    )
    fresh_env = {**os.environ, **env, "HF_HUB_CACHE": str(tmp_path / "fresh_cache")}
    completed = subprocess.run(
        [sys.executable, "-c", script], env=fresh_env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out.read_text())


def test_gan_push_transfer_from_a_hub_id_and_load_back(tmp_path, hub_env, local_hub):
    source = tiny_gan_recipe(tmp_path / "source", max_steps=2)
    train(validate_recipe(source))
    assert main(["push", source["output_dir"], "me/tiny-gan"]) == 0

    # What olah serves on its own (no upload front, no rewritten answers): a whole snapshot, byte for byte.
    from huggingface_hub import snapshot_download

    snapshot = snapshot_download("me/tiny-gan", endpoint=f"http://127.0.0.1:{local_hub.olah_port}")
    for name in ("config.json", "model.safetensors", "generator_model/model.safetensors", "README.md"):
        with (
            open(os.path.join(snapshot, name), "rb") as got,
            open(os.path.join(source["output_dir"], name), "rb") as sent,
        ):
            assert got.read() == sent.read(), name

    # A LoRA transfer whose source is the Hub id: the weights come through huggingface_hub's download path.
    target = tiny_gan_recipe(tmp_path / "target", max_steps=2)
    target.update(init_from="me/tiny-gan", model={}, transfer={"lora": {"r": 2}})
    train(validate_recipe(target))
    report = json.load(open(os.path.join(target["output_dir"], "transfer_report.json")))
    assert report["init_from"] == "me/tiny-gan" and report["parameters"]["counts"]["copied"] > 0
    assert main(["push", target["output_dir"], "me/tiny-gan-lora"]) == 0

    result = _load_back(
        hub_env,
        tmp_path,
        f"""
from transformers import AutoModel
from peft import PeftModel
from hf_genxfer import GANModel, GANPipeline
local = {target["output_dir"]!r}
model = AutoModel.from_pretrained("me/tiny-gan-lora")
reference = GANModel.from_pretrained(local)
result["model"] = type(model).__name__
result["same_weights"] = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
result["base_model"] = model.config.base_model
pipe = GANPipeline.from_pretrained("me/tiny-gan-lora")
local_pipe = GANPipeline.from_pretrained(local)
images = pipe(batch_size=4, class_labels=[5, 6, 7, 8], generator=torch.Generator().manual_seed(0), output_type="pt").images
expected = local_pipe(batch_size=4, class_labels=[5, 6, 7, 8], generator=torch.Generator().manual_seed(0), output_type="pt").images
result["pipeline_difference"] = float((images - expected).abs().max())  # both loaded: tolerance, not bitwise
base = AutoModel.from_pretrained("me/tiny-gan").eval()
adapted = PeftModel.from_pretrained(base, "me/tiny-gan-lora", subfolder="adapter").eval()
latents, labels = torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([5, 6, 7])
with torch.no_grad():
    via_adapter = adapted.base_model.model.generator(latents, labels).images
    merged = model.eval()(latents, labels).images
result["adapter_max_difference"] = float((via_adapter - merged).abs().max())
result["adapter_trainable"] = sum(p.numel() for n, p in adapted.named_parameters() if "lora_" in n)
""",
    )
    assert result["model"] == "GANModel" and result["same_weights"] and result["pipeline_difference"] < 1e-5
    assert result["base_model"] == "me/tiny-gan"
    assert result["adapter_trainable"] > 0 and result["adapter_max_difference"] < 1e-4
    # The card that went up names the repository and the Hub base model, and the adapter has its own card.
    files = os.listdir(local_hub.repo_dir("me/tiny-gan-lora"))
    assert {"README.md", "model_index.json", "adapter"} <= set(files)
    card = open(os.path.join(local_hub.repo_dir("me/tiny-gan-lora"), "README.md")).read()
    assert "base_model: me/tiny-gan" in card and 'AutoModel.from_pretrained("me/tiny-gan-lora")' in card
    adapter_card = open(os.path.join(local_hub.repo_dir("me/tiny-gan-lora"), "adapter", "README.md")).read()
    assert (
        "library_name: peft" in adapter_card and 'PeftModel.from_pretrained(base, "me/tiny-gan-lora"' in adapter_card
    )
    assert "base_model_relation: adapter" in adapter_card and "base_model_relation: finetune" in card


def test_seq2seq_push_and_load_back_with_the_tokenizer(tmp_path, hub_env, local_hub):
    raw = tiny_seq2seq_recipe(tmp_path / "s2s", max_steps=2)
    train(validate_recipe(raw))
    assert main(["push", raw["output_dir"], "me/tiny-num2words"]) == 0
    result = _load_back(
        hub_env,
        tmp_path,
        f"""
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
def generate(name):
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForSeq2SeqLM.from_pretrained(name).eval()
    inputs = tokenizer(["12", "345"], return_tensors="pt", padding=True)
    return type(model).__name__, tokenizer.batch_decode(model.generate(**inputs, max_new_tokens=12), skip_special_tokens=True)
result["hub"] = generate("me/tiny-num2words")
result["local"] = generate({raw["output_dir"]!r})
""",
    )
    assert result["hub"] == result["local"] and result["hub"][0] == "Seq2SeqModel"


def test_a_missing_source_repository_is_one_clear_error(tmp_path, hub_env, capsys):
    raw = tiny_gan_recipe(tmp_path / "target", max_steps=1)
    raw.update(init_from="me/no-such-model", model={})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "me/no-such-model" in error and len(error.splitlines()) == 1
