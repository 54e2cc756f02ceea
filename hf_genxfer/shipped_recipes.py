"""The recipes that ship inside the package (in a checkout, `recipes/` links to them), so that a wheel install can
list, copy and run them: `genxfer recipes`, `genxfer demo`."""

from __future__ import annotations

import difflib
from pathlib import Path

from .errors import RecipeError

RECIPE_FOLDER = Path(__file__).resolve().parent / "recipe_files"


def shipped_recipes() -> dict[str, Path]:
    """`{name: path}`: training recipes by file stem (`gan_digits_pretrain`), launcher configs as `accelerate/cpu`."""
    found = {path.stem: path for path in sorted(RECIPE_FOLDER.glob("*.yaml"))}
    found.update({f"accelerate/{path.stem}": path for path in sorted((RECIPE_FOLDER / "accelerate").glob("*.yaml"))})
    return found


def describe(path: Path) -> str:
    """A recipe's first comment sentence (what it does)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def shipped_recipe(name: str) -> Path:
    """The path of a shipped recipe by name (`gan_digits_pretrain`, with or without `.yaml`)."""
    recipes = shipped_recipes()
    key = name.removesuffix(".yaml").removeprefix("recipes/")
    if key not in recipes:
        close = difflib.get_close_matches(key, list(recipes), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else " `genxfer recipes` lists them."
        raise RecipeError(f"No shipped recipe is called {name!r}.{hint}")
    return recipes[key]
