"""Runs that go wrong: divergence, a reused output folder, damaged and tampered checkpoints (issue 11)."""

import hashlib
import json
import os

import pytest
import torch
import yaml
from cli_errors import one_error_line
from safetensors.torch import load_file
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.cli import main
from hf_genxfer.errors import RecipeError, TrainingDiverged
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.checkpointing import MANIFEST_NAME, list_checkpoints
from hf_genxfer.training.divergence import DivergenceGuard, weights_are_finite
from hf_genxfer.training.loop import train


def _write(path, raw):
    path.write_text(yaml.safe_dump(raw))
    return str(path)


# --------------------------------------------------------------------------------------------------------------------
# Divergence


@pytest.mark.parametrize(
    "family, learning_rate",
    [("seq2seq", "1e6"), ("gan", "1e30")],
)
def test_a_divergent_run_stops_with_one_sentence_and_saves_nothing(tmp_path, capsys, family, learning_rate):
    build = tiny_gan_recipe if family == "gan" else tiny_seq2seq_recipe
    raw = build(tmp_path / "run", max_steps=12, log_every=5, checkpoint_every=50)
    status = main(["train", _write(tmp_path / "r.yaml", raw), "--set", f"training.learning_rate={learning_rate}"])
    assert status == 3
    error = one_error_line(capsys)
    assert "Training diverged: at step" in error and "NaN or infinite" in error and "learning_rate" in error
    assert "no checkpoint was written before it" in error
    for name in ("model.safetensors", "README.md", "metrics.json"):
        assert not (tmp_path / "run" / name).exists(), name
    assert not list_checkpoints(str(tmp_path / "run" / "checkpoints"))


def _poison_from(run_class, batch_number: int):
    """A training step that makes every weight NaN from `batch_number` on: a divergence at a known step."""
    original = run_class.training_step

    def training_step(self, number):
        losses = original(self, number)
        if number >= batch_number:
            with torch.no_grad():
                for module in self.trained_modules():
                    for parameter in module.parameters():
                        parameter.fill_(float("nan"))
        return losses

    return training_step


@pytest.mark.parametrize("family", ["gan", "seq2seq"])
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, family):
    from hf_genxfer.training.gan import GANRun
    from hf_genxfer.training.seq2seq import Seq2SeqRun

    run_class = GANRun if family == "gan" else Seq2SeqRun
    # Weights turn NaN after the optimizer step of micro-batch 4 (step 5): the losses of step 6 are NaN.
    monkeypatch.setattr(run_class, "training_step", _poison_from(run_class, 4))
    build = tiny_gan_recipe if family == "gan" else tiny_seq2seq_recipe
    raw = build(tmp_path / "run", max_steps=10, log_every=10, checkpoint_every=2, checkpoints_total_limit=3)
    with pytest.raises(TrainingDiverged) as caught:
        train(validate_recipe(raw))
    message = str(caught.value)
    checkpoints = list_checkpoints(str(tmp_path / "run" / "checkpoints"))
    assert [step for step, _ in checkpoints] == [2, 4]  # step 6's checkpoint was never written
    assert "at step 6" in message and f"{checkpoints[-1][1]}, is kept" in message
    kept = load_file(os.path.join(checkpoints[-1][1], "model.safetensors"))
    assert all(torch.isfinite(tensor).all() for tensor in kept.values())
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_the_guard_records_the_first_non_finite_step_of_each_value():
    guard = DivergenceGuard(torch.device("cpu"))

    class OneProcess:
        num_processes = 1

    guard.observe(1, {"loss": torch.tensor(1.0), "grad_norm": torch.tensor(2.0)})
    assert guard.first_divergence(OneProcess()) is None
    guard.observe(2, {"loss": torch.tensor(1.0), "grad_norm": torch.tensor(float("inf"))})
    guard.observe(3, {"loss": torch.tensor(float("nan")), "r1": torch.tensor(float("nan"))})
    guard.observe(4, {"loss": torch.tensor(float("nan")), "grad_norm": torch.tensor(float("nan"))})
    assert guard.first_divergence(OneProcess()) == (2, ["grad_norm"])
    model = torch.nn.Linear(2, 2)
    assert weights_are_finite([model])
    with torch.no_grad():
        model.bias[0] = float("inf")
    assert not weights_are_finite([model])


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN"])
def test_non_finite_numbers_fail_recipe_validation(tmp_path, value):
    from hf_genxfer.recipes import load_recipe

    path = _write(tmp_path / "r.yaml", tiny_gan_recipe(tmp_path / "run"))
    with pytest.raises(RecipeError, match="training.learning_rate must be a finite number"):
        load_recipe(path, [f"training.learning_rate={value}"])
    with pytest.raises(RecipeError, match="must be"):
        load_recipe(path, [f"transfer.regularizer_weight={value}", "init_from=somewhere"])


# --------------------------------------------------------------------------------------------------------------------
# A reused output folder


def _files(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(folder)
        for name in names
    }


def test_a_new_run_refuses_another_runs_checkpoints(tmp_path, capsys):
    first = tiny_gan_recipe(tmp_path / "run", max_steps=4)
    train(validate_recipe(first))
    before = _files(tmp_path / "run" / "checkpoints")
    recipe_text = (tmp_path / "run" / "genxfer_recipe.yaml").read_text()

    second = dict(first, seed=1)
    assert main(["train", _write(tmp_path / "second.yaml", second)]) == 2
    error = one_error_line(capsys)
    assert str(tmp_path / "run") in error and "up to step 4" in error
    assert (
        "resume_from_checkpoint=latest" in error and "overwrite_output_dir=true" in error and "new output_dir" in error
    )
    # Resuming with another recipe is refused too, naming the difference.
    assert main(["train", _write(tmp_path / "second.yaml", second), "--set", "training.resume_from_checkpoint=latest"])
    error = one_error_line(capsys)
    assert "belongs to another run" in error and "seed=0" in error and "seed=1" in error
    # Nothing of the first run was touched: its checkpoints and its recipe.
    assert _files(tmp_path / "run" / "checkpoints") == before
    assert (tmp_path / "run" / "genxfer_recipe.yaml").read_text() == recipe_text


def test_overwrite_output_dir_starts_afresh(tmp_path):
    train(validate_recipe(tiny_gan_recipe(tmp_path / "run", max_steps=4, checkpoint_every=1)))
    again = tiny_gan_recipe(tmp_path / "run", max_steps=3, overwrite_output_dir=True)
    again["seed"] = 1
    train(validate_recipe(again))
    assert [step for step, _ in list_checkpoints(str(tmp_path / "run" / "checkpoints"))] == [2, 3]
    fresh = dict(again, output_dir=str(tmp_path / "fresh"))
    fresh["training"] = dict(again["training"], overwrite_output_dir=False)
    train(validate_recipe(fresh))
    a, b = load_file(tmp_path / "run" / "model.safetensors"), load_file(tmp_path / "fresh" / "model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)  # same process, same seed: the same run
    with pytest.raises(RecipeError, match="choose one"):
        validate_recipe(tiny_gan_recipe(tmp_path / "x", overwrite_output_dir=True, resume_from_checkpoint="latest"))


def test_a_resumed_run_may_extend_max_steps_and_change_logging(tmp_path):
    raw = tiny_gan_recipe(tmp_path / "run", max_steps=4)
    train(validate_recipe(raw))
    longer = tiny_gan_recipe(tmp_path / "run", max_steps=6, log_every=3, resume_from_checkpoint="latest")
    assert train(validate_recipe(longer))["step"] == 6


# --------------------------------------------------------------------------------------------------------------------
# Damaged and tampered checkpoints


def _rehash(checkpoint: str, relative: str) -> None:
    """Updates the manifest for a replaced file, as a careful attacker would."""
    path = os.path.join(checkpoint, MANIFEST_NAME)
    manifest = json.load(open(path))
    file = os.path.join(checkpoint, relative)
    manifest["files"][relative] = {
        "size": os.path.getsize(file),
        "sha256": hashlib.sha256(open(file, "rb").read()).hexdigest(),
    }
    json.dump(manifest, open(path, "w"))


@pytest.fixture
def checkpointed_run(tmp_path):
    raw = tiny_gan_recipe(tmp_path / "run", max_steps=4, checkpoint_every=2)
    train(validate_recipe(raw))
    return raw


def test_checkpoints_hold_no_custom_pickles(checkpointed_run):
    for _, path in list_checkpoints(os.path.join(checkpointed_run["output_dir"], "checkpoints")):
        names = set(os.listdir(path))
        assert not any(name.startswith("custom_checkpoint") for name in names)
        assert {"genxfer_state.json", "genxfer_state.safetensors", "genxfer_process_0.safetensors"} <= names
        assert {name for name in names if name.endswith(".pkl")} == {"random_states_0.pkl"}


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "name",
    ["optimizer.bin", "optimizer_1.bin", "scheduler.bin", "random_states_0.pkl", "genxfer_state.safetensors"],
)
def test_a_payload_pickle_in_a_checkpoint_is_refused_unread(tmp_path, checkpointed_run, capsys, name):
    checkpoints = list_checkpoints(os.path.join(checkpointed_run["output_dir"], "checkpoints"))
    marker = tmp_path / "pwned"
    for _, checkpoint in checkpoints:  # every checkpoint tampered, the manifest rewritten to match
        torch.save({"state": _Payload(marker)}, os.path.join(checkpoint, name))
        _rehash(checkpoint, name)
    recipe = _write(tmp_path / "r.yaml", checkpointed_run)
    latest = ["--set", "training.resume_from_checkpoint=latest", "--set", "training.max_steps=6"]
    assert main(["train", recipe, *latest]) == 2
    printed = capsys.readouterr()
    assert not marker.exists()
    assert "Warning: skipping checkpoint-4" in printed.out and "None of the 2 checkpoint(s)" in printed.err
    reason = "refused unread" if name.endswith((".bin", ".pkl")) else "cannot be read"
    assert reason in printed.err and name in printed.err
    assert main(["train", recipe, "--set", f"training.resume_from_checkpoint={checkpoints[0][1]}"]) == 2
    assert "Cannot resume" in one_error_line(capsys) and not marker.exists()


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncate optimizer_1.bin", "optimizer_1.bin is damaged"),
        ("delete random_states_0.pkl", "is missing random_states_0.pkl"),
        ("delete genxfer_checkpoint.json", "has no genxfer_checkpoint.json"),
        ("garbage model.safetensors", "model.safetensors is damaged"),
    ],
)
def test_latest_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, checkpointed_run, capsys, damage, expected):
    checkpoints = list_checkpoints(os.path.join(checkpointed_run["output_dir"], "checkpoints"))
    action, name = damage.split(" ")
    path = os.path.join(checkpoints[-1][1], name)
    if action == "truncate":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif action == "delete":
        os.remove(path)
    else:
        open(path, "wb").write(os.urandom(os.path.getsize(path)))
    training = checkpointed_run["training"]
    # Named explicitly, the damaged checkpoint is one sentence and exit 2.
    explicit = dict(checkpointed_run, training=dict(training, resume_from_checkpoint=checkpoints[-1][1]))
    assert main(["train", _write(tmp_path / "e.yaml", explicit)]) == 2
    assert expected in one_error_line(capsys)
    # As "latest", it is skipped with a warning and the run resumes from the one before.
    resumed = dict(checkpointed_run, training=dict(training, resume_from_checkpoint="latest"))
    assert main(["train", _write(tmp_path / "r.yaml", resumed)]) == 0
    out = capsys.readouterr().out
    assert "Warning: skipping checkpoint-4" in out and expected in out
    assert f"Resumed from {checkpoints[0][1]} at step 2." in out
