"""The config file itself, before its values are checked: duplicate YAML keys, schema errors as one line that
names the file and the key, and relative paths resolved from the file's folder.

Snakemake reads a config file with PyYAML, where a repeated key silently replaces the first, and reports a
schema error as a multi-line jsonschema dump; these run first, in the Snakefile.
"""

from __future__ import annotations

import math
from pathlib import Path

from forgetbench.errors import ConfigError


def check_duplicate_keys(path: str | Path) -> None:
    """Refuse a mapping that repeats a key, naming both lines."""
    import yaml

    path = Path(path)
    if not path.is_file():
        return
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{line} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    pending = [(root, "")]
    while pending:
        node, prefix = pending.pop()
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key, value in node.value:
                name = f"{prefix}{key.value}"
                if key.value in seen:
                    raise ConfigError(f"{path}: line {key.start_mark.line + 1}: duplicate key '{name}' (first at line "
                                      f"{seen[key.value]}); YAML would keep only the last")
                seen[key.value] = key.start_mark.line + 1
                pending.append((value, f"{name}."))
        elif isinstance(node, yaml.SequenceNode):
            pending += [(item, prefix) for item in node.value]


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _hint(error) -> str:
    """The fix where it is known: YAML reads 1e-5 (no decimal point) as a string."""
    value = error.instance
    if isinstance(value, str) and "number" in str(error.validator_value):
        try:
            number = float(value)
        except ValueError:
            return ""
        mantissa, _, exponent = value.lower().partition("e")
        fixed = f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else repr(number)
        return f" (YAML reads {value} as a string: write {fixed})"
    return ""


def check_schema(config: dict, schema: dict, where: str) -> None:
    """The first schema error, as one line: file, key, what is wrong and the fix where it is known."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    raise ConfigError(f"{where}: {_key_path(error)}: {message}{_hint(error)}")


def check_finite_numbers(config: dict, where: str) -> None:
    """NaN and infinity pass every bound of a schema (each comparison is false): refuse them."""
    pending = [(config, "")]
    while pending:
        node, prefix = pending.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, value in items:
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where}: {name}: {value} is not a finite number")
            pending.append((value, name))


RELATIVE_PATHS = (("domain", "path"), ("domain", "test_path"))


def resolve_paths(config: dict, config_file: str | Path) -> None:
    """Relative data and model paths are read from the config file's folder, not the working directory."""
    config_file = Path(config_file)
    if not config_file.is_file():
        return
    folder = config_file.resolve().parent

    def resolved(value):
        return str(folder / value) if isinstance(value, str) and value and not Path(value).is_absolute() else value

    for section, key in RELATIVE_PATHS:
        if isinstance(config.get(section), dict) and key in config[section]:
            config[section][key] = resolved(config[section][key])
    evaluation = config.get("evaluation")
    if isinstance(evaluation, dict) and evaluation.get("include_path"):
        paths = evaluation["include_path"]
        evaluation["include_path"] = [resolved(p) for p in paths] if isinstance(paths, list) else resolved(paths)
    for model in (config.get("models") or {}).values():
        if isinstance(model, dict) and model.get("source") == "local" and "path" in model:
            model["path"] = resolved(model["path"])
