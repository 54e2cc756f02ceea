"""Kill-and-resume with real processes: SIGKILL mid-step, mid-checkpoint-write, before a checkpoint's rename and
during the final evaluation of an early-stopped run; every resumed run's final weights equal an uninterrupted run's
bit for bit (resume exactness is guaranteed on one machine: the same kernels replay on the same layouts)."""

import os
import signal
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

DRIVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kill_driver.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"}


def _gan_multitask(output_dir):
    raw = tiny_gan_recipe(output_dir, max_steps=8)
    raw["model"]["task_names"] = ["low", "high"]
    raw["model"]["shared_blocks"] = 1
    raw["data"]["tasks"] = {"low": {"classes": [0, 1, 2, 3, 4]}, "high": {"classes": [5, 6, 7, 8, 9]}}
    raw["multitask"] = {"mixing": "round_robin", "loss_weighting": "uncertainty"}
    return raw


def _seq2seq_multitask(output_dir):
    raw = tiny_seq2seq_recipe(output_dir, max_steps=8)
    raw["model"]["task_names"] = ["en", "fr"]
    raw["model"]["sharing"] = "shared_encoder"
    raw["data"]["tasks"] = {"en": {"language": "en"}, "fr": {"language": "fr", "train_size": 16}}
    raw["data"]["tokenizer_languages"] = ["fr"]
    raw["multitask"] = {"mixing": "temperature", "loss_weighting": "uncertainty"}
    return raw


def _seq2seq_early_stopped(output_dir):
    # A learning rate too small to change a generation: validation chrF cannot improve, so patience 1 stops the run
    # at its second evaluation (step 4 of 12), and the checkpoint of step 4 holds that decision.
    return tiny_seq2seq_recipe(
        output_dir, max_steps=12, learning_rate=1e-7, eval_every=2, early_stopping_patience=1, checkpoint_every=2
    )


CHAINS = {
    "gan": (lambda out: tiny_gan_recipe(out, max_steps=8), ["state-write:4", "step:6", None]),
    "seq2seq": (lambda out: tiny_seq2seq_recipe(out, max_steps=8), ["step:3", "before-rename:6", None]),
    "gan_multitask": (_gan_multitask, ["step:5", None]),
    "seq2seq_multitask": (_seq2seq_multitask, ["state-write:6", None]),
    "seq2seq_early_stopped": (_seq2seq_early_stopped, ["final-eval", None]),
}


def _start(recipe_path, kill_at=None, resume=False):
    command = [sys.executable, DRIVER, str(recipe_path)]
    if kill_at:
        command += ["--kill-at", kill_at]
    if resume:
        command += ["--set", "training.resume_from_checkpoint=latest"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _finish(process, killed: bool):
    stdout, stderr = process.communicate(timeout=600)
    if killed:
        assert process.returncode == -signal.SIGKILL, stderr[-3000:]
    else:
        assert process.returncode == 0, stderr[-3000:]
    return stdout


@pytest.mark.parametrize("chain", list(CHAINS))
def test_killed_runs_resume_to_the_uninterrupted_weights(tmp_path, chain):
    build, kills = CHAINS[chain]
    paths = {}
    for name in ("straight", "killed"):
        raw = build(str(tmp_path / name))
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(raw))
    straight = _start(paths["straight"])  # alongside the killed chain: two processes, two cores
    for attempt, kill_at in enumerate(kills):
        process = _start(paths["killed"], kill_at=kill_at, resume=attempt > 0)
        _finish(process, killed=kill_at is not None)
        run = tmp_path / "killed"
        if kill_at is not None:
            assert not (run / "model.safetensors").exists()
    _finish(straight, killed=False)

    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    metrics = yaml.safe_load((tmp_path / "killed" / "metrics.json").read_text())
    reference = yaml.safe_load((tmp_path / "straight" / "metrics.json").read_text())
    assert metrics["step"] == reference["step"]
    if chain == "seq2seq_early_stopped":
        assert reference["step"] == 4  # stopped early, and the resumed run did not train past it
