import json
import os
import subprocess
import sys

import yaml

from hf_genxfer.cli import main


def _write(path, raw):
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_train_sample_eval_and_fresh_process_loading(tmp_path, gan_recipe_factory, capsys):
    recipe = _write(tmp_path / "recipe.yaml", gan_recipe_factory())
    out = str(tmp_path / "run")
    assert main(["train", recipe]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{") :])["step"] == 4

    grid = str(tmp_path / "grid.png")
    assert main(["sample", out, "--num", "9", "--out", grid, "--class-label", "3"]) == 0
    assert os.path.getsize(grid) > 0 and "Wrote 9 samples" in capsys.readouterr().out

    assert main(["eval", out, "--num-samples", "32"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["num_generated"] == 32 and scores["fid"] > 0

    # In a fresh process: import hf_genxfer, then the Auto classes and the pipeline load the folder.
    code = (
        "import sys, torch, hf_genxfer\n"
        "from transformers import AutoModel\n"
        "from hf_genxfer import GANPipeline\n"
        "m = AutoModel.from_pretrained(sys.argv[1])\n"
        "assert type(m).__name__ == 'GANModel'\n"
        "out = GANPipeline.from_pretrained(sys.argv[1])(batch_size=4, generator=torch.Generator().manual_seed(0))\n"
        "print(len(out.images), out.images[0].size, out.class_labels.tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("4 (8, 8) [")


def test_dry_run_prints_the_resolved_recipe_and_model_size(tmp_path, gan_recipe_factory, capsys):
    recipe = _write(tmp_path / "recipe.yaml", gan_recipe_factory())
    assert main(["train", recipe, "--dry-run", "--set", "training.max_steps=9"]) == 0
    printed = capsys.readouterr().out
    assert "max_steps: 9" in printed and "GANModel" in printed and "trainable (100.0%)" in printed
    assert not os.path.exists(tmp_path / "run")


def test_bad_input_gives_one_sentence_and_exit_2(tmp_path, gan_recipe_factory, capsys):
    raw = gan_recipe_factory()
    raw["training"]["max_step"] = 3
    assert main(["train", _write(tmp_path / "bad.yaml", raw)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genxfer train: error: Unknown recipe key training.max_step. Did you mean 'max_steps'?")
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "No recipe file at" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "No model folder at" in capsys.readouterr().err
    raw = gan_recipe_factory()
    raw["model"]["image_size"] = 12
    assert main(["train", _write(tmp_path / "bad_model.yaml", raw)]) == 2
    assert "GANConfig.image_size must be a power of two" in capsys.readouterr().err


def test_module_entry_point_exits_non_zero_on_bad_input(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hf_genxfer", "train", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert result.returncode == 2 and "No recipe file at" in result.stderr
