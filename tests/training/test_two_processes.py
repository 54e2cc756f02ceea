"""Two real processes on CPU (gloo) through accelerate's debug_launcher: DDP keeps the ranks identical, and
evaluation sees every example exactly once."""

import glob
import json
import os

import pytest
import torch
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe


def _train_and_dump(raw: dict) -> None:
    import torch

    torch.set_num_threads(1)
    from accelerate import PartialState

    from hf_genxfer.recipes import validate_recipe
    from hf_genxfer.training.loop import build_accelerator, train

    recipe = validate_recipe(raw)
    accelerator = build_accelerator(recipe)
    metrics = train(recipe, accelerator=accelerator)
    state = PartialState()
    # Every rank writes the weights it trained, so the test can compare them.
    run = accelerator._models if hasattr(accelerator, "_models") else []
    weights = {
        f"{i}.{k}": v.detach().cpu()
        for i, m in enumerate(run)
        for k, v in accelerator.unwrap_model(m).state_dict().items()
    }
    torch.save(weights, os.path.join(raw["output_dir"], f"rank{state.process_index}.pt"))
    if state.is_main_process:
        with open(os.path.join(raw["output_dir"], "ranks.json"), "w") as handle:
            json.dump(
                {
                    "num_processes": state.num_processes,
                    "metrics": {k: v for k, v in metrics.items() if k != "examples"},
                },
                handle,
            )


@pytest.mark.parametrize("family", ["gan", "seq2seq"])
def test_two_processes_stay_in_sync(tmp_path, family):
    from accelerate import debug_launcher

    if family == "gan":
        raw = tiny_gan_recipe(tmp_path / "run", max_steps=3)
    else:
        raw = tiny_seq2seq_recipe(tmp_path / "run", max_steps=3, eval_every=2)
        raw["data"].update(validation_size=7, test_size=9)  # odd sizes: shards of unequal length
    debug_launcher(_train_and_dump, args=(raw,), num_processes=2)
    summary = json.load(open(tmp_path / "run" / "ranks.json"))
    assert summary["num_processes"] == 2
    ranks = [torch.load(path) for path in sorted(glob.glob(str(tmp_path / "run" / "rank*.pt")))]
    assert len(ranks) == 2 and ranks[0].keys() == ranks[1].keys() and len(ranks[0]) > 0
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0, msg=key)
    if family == "seq2seq":
        assert summary["metrics"]["num_examples"] == 9  # every test example once, gathered from both ranks


def test_accelerate_launch_with_the_shipped_multi_process_config(tmp_path):
    import subprocess
    import sys

    import yaml

    raw = tiny_gan_recipe(tmp_path / "run", max_steps=2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    config = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "accelerate", "multi_process_cpu.yaml")
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    result = subprocess.run(
        [
            launcher,
            "launch",
            "--config_file",
            config,
            "--main_process_port",
            "29561",
            "-m",
            "hf_genxfer",
            "train",
            str(recipe),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Each process saved its own random state: two real processes ran.
    states = glob.glob(str(tmp_path / "run" / "checkpoints" / "checkpoint-2" / "random_states_*.pkl"))
    assert len(states) == 2 and os.path.isfile(tmp_path / "run" / "model.safetensors")


def _train_crash_resume(raw: dict, stop_after: int | None) -> None:
    torch.set_num_threads(1)
    from hf_genxfer.recipes import validate_recipe
    from hf_genxfer.training.loop import train

    train(validate_recipe(raw), stop_after_steps=stop_after)


def test_two_process_gan_resume_is_exact(tmp_path):
    from accelerate import debug_launcher
    from safetensors.torch import load_file

    straight = tiny_gan_recipe(tmp_path / "straight", max_steps=4)
    debug_launcher(_train_crash_resume, args=(straight, None), num_processes=2)
    crashed = tiny_gan_recipe(tmp_path / "crashed", max_steps=4)
    debug_launcher(_train_crash_resume, args=(crashed, 2), num_processes=2)
    crashed["training"]["resume_from_checkpoint"] = "latest"
    debug_launcher(_train_crash_resume, args=(crashed, None), num_processes=2)
    a = load_file(os.path.join(straight["output_dir"], "model.safetensors"))
    b = load_file(os.path.join(crashed["output_dir"], "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
