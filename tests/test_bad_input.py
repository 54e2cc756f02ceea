"""Bad input through the CLI: one sentence naming the problem and the fix, exit 2, no traceback (issue 11, item 6).

Each case is a row of `CASES`: how to build the input, the command, and a fragment the sentence must contain. The
README's "Faults and bad input" section lists the same cases.
"""

import json
import os

import pytest
import torch
import yaml
from cli_errors import one_error_line
from PIL import Image
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained tiny run folders (2 steps each): a GAN, a multi-task GAN, an English Seq2Seq model."""
    from accelerate.state import AcceleratorState, GradientState

    from hf_genxfer.recipes import validate_recipe
    from hf_genxfer.training.loop import train

    root = tmp_path_factory.mktemp("runs")
    gan = tiny_gan_recipe(root / "gan", max_steps=2)
    multitask = tiny_gan_recipe(root / "gan_multitask", max_steps=2)
    multitask["model"].update(task_names=["low", "high"], shared_blocks=1)
    multitask["data"]["tasks"] = {"low": {"classes": [0, 1, 2, 3, 4]}, "high": {"classes": [5, 6, 7, 8, 9]}}
    seq2seq = tiny_seq2seq_recipe(root / "s2s", max_steps=2)
    for raw in (gan, multitask, seq2seq):
        train(validate_recipe(raw))
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return {"gan": gan["output_dir"], "gan_multitask": multitask["output_dir"], "s2s": seq2seq["output_dir"]}


def _recipe(tmp_path, raw, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _changed(raw: dict, changes: dict) -> dict:
    """`section__field=value` sets a field of a section; `key=value` a top-level key (or a whole section)."""
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    return raw


def _gan(tmp_path, **changes):
    return _changed(tiny_gan_recipe(tmp_path / "out", max_steps=2), changes)


def _s2s(tmp_path, **changes):
    return _changed(tiny_seq2seq_recipe(tmp_path / "out", max_steps=2), changes)


def _copy_model(source: str, target, damage: str):
    """A copy of a run's config and weights with its model.safetensors damaged, or stored as a pickle only, or with
    a config.json field edited by hand to the wrong type."""
    import json

    from safetensors.torch import load_file

    os.makedirs(target, exist_ok=True)
    with open(os.path.join(source, "config.json")) as handle:
        config = json.load(handle)
    if damage == "edited":
        config["image_size"] = str(config["image_size"])  # "8": a quoted number
    (target / "config.json").write_text(json.dumps(config))
    weights = open(os.path.join(source, "model.safetensors"), "rb").read()
    if damage == "edited":
        (target / "model.safetensors").write_bytes(weights)
    elif damage == "truncated":
        (target / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    elif damage == "garbage":
        (target / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 20)
    else:  # pickle only
        torch.save(load_file(os.path.join(source, "model.safetensors")), target / "pytorch_model.bin")
    return str(target)


def _imagefolder(folder, modes_and_sizes):
    for index, (mode, size) in enumerate(modes_and_sizes):
        os.makedirs(folder / str(index % 2), exist_ok=True)
        Image.new(mode, (size, size), color=0 if mode == "L" else (10, 20, 30)[: len(mode)]).save(
            folder / str(index % 2) / f"{index}.png"
        )
    return str(folder)


# (name, build(tmp_path, runs) -> argv, fragment of the error sentence)
CASES = [
    (
        "yaml syntax error",
        lambda t, r: [
            "train",
            _write_text(t / "bad.yaml", "family: gan\noutput_dir: x\ntraining:\n  max_steps: [1,\n"),
        ],
        "bad.yaml, line 5, column 1, is not valid YAML",
    ),
    (
        "a key given twice",
        lambda t, r: ["train", _write_text(t / "twice.yaml", "family: gan\noutput_dir: x\nfamily: seq2seq\n")],
        "the key 'family' is given twice",
    ),
    (
        "--set value that is not YAML",
        lambda t, r: ["train", _recipe(t, _gan(t)), "--set", "training.max_steps=[1,"],
        "The value of --set training.max_steps=[1, is not valid YAML",
    ),
    (
        "--set without a value",
        lambda t, r: ["train", _recipe(t, _gan(t)), "--set", "training.max_steps"],
        "--set takes key=value",
    ),
    (
        "unknown key",
        lambda t, r: ["train", _recipe(t, _gan(t, training__max_step=3))],
        "Unknown recipe key training.max_step. Did you mean 'max_steps'?",
    ),
    (
        "a number where a list goes",
        lambda t, r: ["train", _recipe(t, _gan(t, data__classes=3))],
        "data.classes must be a list",
    ),
    (
        "a negative learning rate",
        lambda t, r: ["train", _recipe(t, _gan(t, training__learning_rate=-1))],
        "training.learning_rate must be greater than 0",
    ),
    ("not a finite number", lambda t, r: ["train", _recipe(t, _gan(t)), "--set", "training.r1_gamma=.inf"], "finite"),
    (
        "held-out fraction out of range",
        lambda t, r: ["train", _recipe(t, _gan(t, data__held_out_fraction=1.5))],
        "data.held_out_fraction must be between 0 and 1",
    ),
    (
        "a model value out of range",
        lambda t, r: ["train", _recipe(t, _gan(t, model={"image_size": 12}))],
        "GANConfig.image_size must be a power of two",
    ),
    (
        "an empty json file",
        lambda t, r: ["train", _recipe(t, _s2s(t, data={"dataset": _write_text(t / "empty.json", "")}))],
        "is empty: give it one pair per row",
    ),
    (
        "a truncated json file",
        lambda t, r: [
            "train",
            _recipe(t, _s2s(t, data={"dataset": _write_text(t / "cut.jsonl", '{"source": "1", "target": "o')})),
        ],
        "cannot be read as json",
    ),
    (
        "a folder without images",
        lambda t, r: ["train", _recipe(t, _gan(t, data={"dataset": _write_text(t / "noimg" / "a.txt", "x", True)}))],
        "holds no images: an imagefolder has image files",
    ),
    (
        "a dataset that does not exist",
        lambda t, r: ["train", _recipe(t, _s2s(t, data={"dataset": "nobody/no-such-dataset"}))],
        "cannot be loaded",
    ),
    (
        "truncated model.safetensors as init_from",
        lambda t, r: ["train", _recipe(t, _gan(t, init_from=_copy_model(r["gan"], t / "cut", "truncated"), model={}))],
        "cannot be loaded (SafetensorError",
    ),
    (
        "garbage model.safetensors as init_from",
        lambda t, r: ["train", _recipe(t, _gan(t, init_from=_copy_model(r["gan"], t / "junk", "garbage"), model={}))],
        "cannot be loaded (SafetensorError",
    ),
    (
        "pickle-only init_from",
        lambda t, r: ["train", _recipe(t, _gan(t, init_from=_copy_model(r["gan"], t / "pkl", "pickle"), model={}))],
        "holds its weights only as a pickle (pytorch_model.bin)",
    ),
    (
        "a Seq2Seq init_from in a GAN recipe",
        lambda t, r: ["train", _recipe(t, _gan(t, init_from=r["s2s"], model={}))],
        "is a genxfer_seq2seq model and this recipe's family is gan",
    ),
    (
        "a GAN init_from in a Seq2Seq recipe",
        lambda t, r: ["train", _recipe(t, _s2s(t, init_from=r["gan"], model={}))],
        "is a gan model (genxfer_gan) and this recipe's family is seq2seq",
    ),
    ("sample --num 0", lambda t, r: ["sample", r["gan"], "--num", "0"], "--num must be at least 1"),
    ("sample --num -3", lambda t, r: ["sample", r["gan"], "--num", "-3"], "--num must be at least 1"),
    (
        "a config.json field of the wrong type as init_from",
        lambda t, r: ["train", _recipe(t, _gan(t, init_from=_copy_model(r["gan"], t / "ed", "edited"), model={}))],
        "field 'image_size': TypeError: Field 'image_size' expected int, got str",
    ),
    (
        "sample from a folder whose config.json has a field of the wrong type",
        lambda t, r: ["sample", _copy_model(r["gan"], t / "ed", "edited")],
        "field 'image_size': TypeError: Field 'image_size' expected int, got str",
    ),
    (
        "sample from a pickle-only folder",
        lambda t, r: ["sample", _copy_model(r["gan"], t / "pkl", "pickle")],
        "safetensors only",
    ),
    (
        "generate from a pickle-only folder",
        lambda t, r: ["generate", _copy_model(r["s2s"], t / "pkl", "pickle"), "12"],
        "safetensors only",
    ),
    ("generate from a GAN folder", lambda t, r: ["generate", r["gan"], "12"], "use `genxfer sample`"),
    (
        "sample from a Seq2Seq folder",
        lambda t, r: ["sample", r["s2s"]],
        "is a seq2seq run folder, which `genxfer sample` does not read: use `genxfer generate`",
    ),
    (
        "sample a multi-task GAN without --task",
        lambda t, r: ["sample", r["gan_multitask"]],
        "is a multi-task GAN: pass --task, one of low, high",
    ),
    (
        "sample an unknown task",
        lambda t, r: ["sample", r["gan_multitask"], "--task", "odd"],
        "Unknown task 'odd'",
    ),
    ("generate --num-beams 0", lambda t, r: ["generate", r["s2s"], "12", "--num-beams", "0"], "--num-beams"),
    ("eval a folder that is not a run", lambda t, r: ["eval", str(t / "nowhere")], "No model folder at"),
    (
        "Russian targets for an English tokenizer",
        lambda t, r: ["train", _recipe(t, _s2s(t, init_from=r["s2s"], model={}, data__language="ru"))],
        "The tokenizer of init_from",
    ),
    (
        "a decoder-only init_from in a Seq2Seq recipe",
        lambda t, r: ["train", _recipe(t, _s2s(t, init_from=_gpt2_folder(t / "gpt2"), model={}))],
        "is a gpt2 model, not an encoder-decoder",
    ),
    (
        "rows without a target",
        lambda t, r: [
            "train",
            _recipe(t, _s2s(t, data={"dataset": _write_text(t / "rows.jsonl", _rows([("1", "one"), ("2", None)]))})),
        ],
        "Row 1 of",
    ),
    (
        "lists where text goes",
        lambda t, r: [
            "train",
            _recipe(t, _s2s(t, data={"dataset": _write_text(t / "lists.jsonl", _rows([("1", ["o", "ne"])]))})),
        ],
        "must hold text",
    ),
    (
        "a file in an image folder that is not an image",
        lambda t, r: ["train", _recipe(t, _gan(t, data={"dataset": _broken_imagefolder(t / "broken")}))],
        "cannot be decoded",
    ),
    (
        "too few images to hold some out",
        lambda t, r: ["train", _recipe(t, _gan(t, data={"dataset": _imagefolder(t / "few", [("L", 8)] * 3)}))],
        "cannot hold out at least one image of each of the 2 class(es)",
    ),
    (
        "eval --num-samples 0",
        lambda t, r: ["eval", r["gan"], "--num-samples", "0"],
        "--num-samples must be at least 1",
    ),
    (
        "an empty recipe",
        lambda t, r: ["train", _write_text(t / "empty.yaml", "")],
        "The recipe is missing the required field family",
    ),
    (
        "a language code for a tokenizer without codes",
        lambda t, r: ["train", _recipe(t, _s2s(t, data__target_language_code="ru"))],
        "need a tokenizer with language codes (mBART, M2M100, NLLB)",
    ),
    (
        "a recipe that is not a mapping",
        lambda t, r: ["train", _write_text(t / "list.yaml", "- family: gan\n")],
        "A recipe must be a YAML mapping",
    ),
    (
        "resume from a folder that is not a checkpoint",
        lambda t, r: ["train", _recipe(t, _gan(t, training__resume_from_checkpoint=str(t / "none")))],
        "is not a folder: use 'latest'",
    ),
]


def _rows(pairs) -> str:
    return "\n".join(json.dumps({"source": source, "target": target}) for source, target in pairs * 20)


def _gpt2_folder(folder) -> str:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=99, n_positions=32)).save_pretrained(folder)
    return str(folder)


def _broken_imagefolder(folder) -> str:
    _imagefolder(folder, [("L", 8)] * 20)
    (folder / "1" / "broken.png").write_bytes(b"not a png")
    return str(folder)


def _write_text(path, text, make_parent=False):
    if make_parent:
        os.makedirs(path.parent, exist_ok=True)
    path.write_text(text)
    return str(path.parent if make_parent else path)


@pytest.mark.parametrize("name, build, fragment", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, runs, capsys, name, build, fragment):
    argv = build(tmp_path, runs)
    capsys.readouterr()
    assert main(argv) == 2
    error = one_error_line(capsys)
    assert fragment in error, error
    assert error.endswith((".", "?")), error  # a sentence, not a clipped message


def test_russian_targets_name_the_missing_characters(tmp_path, runs, capsys):
    raw = _s2s(tmp_path, init_from=runs["s2s"], model={}, data__language="ru")
    assert main(["train", _recipe(tmp_path, raw)]) == 2
    error = one_error_line(capsys)
    assert "'о'" in error or "'д'" in error  # Cyrillic letters the English character tokenizer never saw
    assert "transfer.retrain_tokenizer=true" in error
    # The fix it names works: a new character tokenizer, shared tokens keep their rows.
    raw["transfer"] = {"retrain_tokenizer": True}
    raw["output_dir"] = str(tmp_path / "fixed")
    assert main(["train", _recipe(tmp_path, raw)]) == 0


@pytest.mark.parametrize(
    "value, expected",
    [("2e-4", 0.0002), ("1e-3", 0.001), ("5E-5", 5e-05), ("3", 3.0), ("'2e-4'", 0.0002), ("2.0e-4", 0.0002)],
)
def test_numbers_load_as_people_write_them(tmp_path, capsys, value, expected):
    from hf_genxfer.recipes import load_recipe

    text = yaml.safe_dump(_gan(tmp_path)).replace("training:\n", f"training:\n  learning_rate: {value}\n", 1)
    path = _write_text(tmp_path / "r.yaml", text)
    assert load_recipe(path).training.learning_rate == expected
    assert main(["train", path, "--dry-run"]) == 0
    printed = capsys.readouterr().out.rstrip().rsplit("\n", 1)[0]  # the resolved recipe, then the model line
    assert yaml.safe_load(printed)["training"]["learning_rate"] == expected
    other = _recipe(tmp_path, _gan(tmp_path), "other.yaml")
    assert load_recipe(other, [f"training.learning_rate={value}"]).training.learning_rate == expected


def test_yaml_as_people_write_it(tmp_path):
    from hf_genxfer.recipes import load_recipe

    path = _recipe(tmp_path, _s2s(tmp_path))
    recipe = load_recipe(path, ["data.language=no", "training.max_steps=1e3", "training.batch_size=1_024"])
    assert recipe.data.language == "no"  # Norwegian, not False
    assert recipe.training.max_steps == 1000 and recipe.training.batch_size == 1024
    assert load_recipe(path, ["output_dir=2026-12-01"]).output_dir == "2026-12-01"


def test_mixed_image_modes_and_sizes_give_one_warning_with_counts(tmp_path, capsys):
    folder = _imagefolder(tmp_path / "mixed", [("L", 8)] * 6 + [("RGB", 8)] * 3 + [("RGBA", 12)] * 3)
    raw = _gan(tmp_path, data={"dataset": folder, "held_out_fraction": 0.25})
    raw["model"]["num_classes"] = 2
    raw["evaluation"] = {"num_samples": 8}
    assert main(["train", _recipe(tmp_path, raw)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, warnings
    assert "3 mode(s) (L: 6, RGB: 3, RGBA: 3)" in warnings[0] and "2 size(s) (8x8: 9, 12x12: 3)" in warnings[0]
    json.loads(open(os.path.join(raw["output_dir"], "metrics.json")).read())
