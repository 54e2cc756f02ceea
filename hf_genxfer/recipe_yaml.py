"""Reading YAML the way people write recipes: YAML 1.2's scalars (`2e-4` is a number, `no` a string), keys given
twice refused, and a syntax error as one sentence naming the file and the line."""

from __future__ import annotations

import re

import yaml

from .errors import RecipeError


class RecipeLoader(yaml.SafeLoader):
    """
    PyYAML's safe loader with YAML 1.2's core schema for scalars: `2e-4` is a number (YAML 1.1 needs `2.0e-4`),
    `no`/`on` are strings (YAML 1.1 makes them booleans, so Norwegian's num2words code `no` became False), `010` is
    ten, not octal eight, and `2026-12-01` stays a string. A key given twice in one mapping is an error, not a silent overwrite.
    """


RecipeLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "float", "int", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: RecipeLoader, node) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    return int(text, 0) if text.lower().startswith(("0o", "0x", "-0o", "-0x", "+0o", "+0x")) else int(text, 10)


def _construct_mapping(loader: RecipeLoader, node) -> dict:
    loader.flatten_mapping(node)
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice in one mapping (the first would be lost)", mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


RecipeLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
RecipeLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(text: str, where: str, fix: str = "fix it there", show_position: bool = True):
    """YAML text -> Python values with `RecipeLoader`; a syntax error is one sentence naming `where` and the line."""
    try:
        return yaml.load(text, Loader=RecipeLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error)
        place = where
        if show_position and mark is not None:
            place = f"{where}, line {mark.line + 1}, column {mark.column + 1},"
        raise RecipeError(f"{place} is not valid YAML ({' '.join(str(problem).split())}): {fix}.") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as error:  # e.g. `!!float x`, deep nesting
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise RecipeError(f"{where} holds a value YAML cannot build ({reason}): {fix}.") from None


__all__ = ["RecipeLoader", "load_yaml"]
