import pytest

from hf_genxfer.recipes import RecipeError, apply_overrides, load_recipe, validate_recipe


def test_shipped_recipes_validate():
    import glob

    paths = glob.glob("recipes/*.yaml")
    assert paths
    for path in paths:
        load_recipe(path)


def test_unknown_key_gets_a_suggestion(gan_recipe_factory):
    raw = gan_recipe_factory()
    raw["training"]["max_step"] = 3
    with pytest.raises(RecipeError, match=r"Unknown recipe key training.max_step. Did you mean 'max_steps'\?"):
        validate_recipe(raw)
    raw = gan_recipe_factory()
    raw["model"]["num_class"] = 3
    with pytest.raises(RecipeError, match=r"model.num_class for the gan family. Did you mean 'num_classes'"):
        validate_recipe(raw)
    raw = gan_recipe_factory()
    raw["data"]["shot_per_class"] = 3
    with pytest.raises(RecipeError, match=r"data.shot_per_class. Did you mean 'shots_per_class'"):
        validate_recipe(raw)


@pytest.mark.parametrize(
    "path, value, fragment",
    [
        (("training", "max_steps"), "ten", "training.max_steps must be an integer"),
        (("training", "learning_rate"), True, "training.learning_rate must be a number"),
        (("training", "mixed_precision"), "fp8", "training.mixed_precision must be one of 'no', 'bf16'"),
        (("training", "adam_betas"), [0.5], "adam_betas must be two numbers"),
        (("data", "classes"), "0-4", "data.classes must be a list"),
        (("training", "batch_size"), 0, "training.batch_size must be at least 1"),
        (("training", "lr_scheduler"), "cosin", "training.lr_scheduler 'cosin' is not a transformers .*'cosine'"),
        (("training", "lr_scheduler"), "reduce_lr_on_plateau", "not a transformers scheduler this loop can step"),
        (("training", "lr_schedule_steps"), 0, "training.lr_schedule_steps must be at least 1"),
    ],
)
def test_wrong_types_are_rejected(gan_recipe_factory, path, value, fragment):
    raw = gan_recipe_factory()
    raw[path[0]][path[1]] = value
    with pytest.raises(RecipeError, match=fragment):
        validate_recipe(raw)


def test_missing_fields(gan_recipe_factory):
    raw = gan_recipe_factory()
    del raw["output_dir"]
    with pytest.raises(RecipeError, match="missing the required field output_dir"):
        validate_recipe(raw)
    with pytest.raises(RecipeError, match="missing the required field family"):
        validate_recipe({"output_dir": "x"})
    with pytest.raises(RecipeError, match="family must be one of 'gan', 'seq2seq'"):
        validate_recipe({"family": "vae", "output_dir": "x"})


def test_overrides(gan_recipe_factory):
    raw = gan_recipe_factory()
    updated = apply_overrides(
        raw, ["training.max_steps=7", "data.classes=[5, 6]", "training.ema_decay=null", "seed=3"]
    )
    recipe = validate_recipe(updated)
    assert recipe.training.max_steps == 7 and recipe.data.classes == [5, 6]
    assert recipe.training.ema_decay is None and recipe.seed == 3
    assert raw["training"]["max_steps"] == 4  # the input is not modified
    with pytest.raises(RecipeError, match="--set takes key=value"):
        apply_overrides(raw, ["training.max_steps"])
    with pytest.raises(RecipeError, match="is a value, not a section"):
        apply_overrides(raw, ["seed.x=1"])


def test_missing_recipe_file():
    with pytest.raises(RecipeError, match="No recipe file at 'nope.yaml'"):
        load_recipe("nope.yaml")
