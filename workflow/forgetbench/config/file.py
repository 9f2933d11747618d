"""The config as written, before the schema's defaults fill it in: duplicate YAML keys, a tab, NaN or infinity,
two settings that contradict each other, whether a key came from the file or the command line (--config), and
relative paths resolved from the file's folder.

Snakemake reads a config file with PyYAML, where a repeated key silently replaces the first; these run first.
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import yaml

from forgetbench.errors import ConfigError


def check_duplicate_keys(path: str | Path) -> None:
    """Refuse a mapping that repeats a key, naming both lines."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
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


def yaml_error(path: Path, exc) -> str:
    """One line for a file YAML cannot read: the file, the line, and for a tab the fix (YAML indents with
    spaces only; Snakemake's own message names neither the file nor the line)."""
    mark = getattr(exc, "problem_mark", None)
    line = f" line {mark.line + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if mark and mark.line < len(text) and "\t" in text[mark.line][: mark.column + 1]:
        return (f"{path}:{line}: a tab indents or separates this line, and YAML allows spaces only: "
                f"replace the tab with spaces")
    return f"{path}:{line} not valid YAML ({problem})"


def given_on_command_line(key: str, overrides: dict | None) -> bool:
    """Whether the value at the dotted `key` came from `--config` (Snakemake merges it over the file's, key by
    key): a key inside a list or a value given whole on the command line counts as given there."""
    node = overrides or {}
    if not node:
        return False
    for part in key.split("."):
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def origin(where: str, key: str, overrides: dict | None) -> str:
    """Where a key's value was written: the command line's --config, else the config file `where`."""
    return "command line (--config)" if given_on_command_line(key, overrides) else where


def visible_character(ch: str) -> str:
    """A character as a reader can see it: 'a space', a visible one quoted, else its code point and name."""
    if ch == " ":
        return "a space"
    if ch.isprintable() and not ch.isspace():
        return repr(ch)
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'an unnamed character')}"


def check_finite_numbers(config: dict, where: str, overrides: dict | None = None) -> None:
    """NaN and infinity pass every bound of a schema (each comparison is false): refuse them."""
    pending = [(config, "")]
    while pending:
        node, prefix = pending.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, value in items:
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{origin(where, name, overrides)}: {name}: {value} is not a finite number")
            pending.append((value, name))


def check_raw_config(config: dict, where: str, overrides: dict | None = None) -> None:
    """Checks on the config as written, before the schema's defaults fill it in and hide what was given."""
    check_finite_numbers(config, where, overrides)
    training = config.get("training") or {}
    if isinstance(training, dict) and training.get("max_steps") is not None and "epochs" in training:
        given = [origin(where, f"training.{k}", overrides) for k in ("max_steps", "epochs")]
        raise ConfigError(f"{' and '.join(dict.fromkeys(given))}: training.epochs and training.max_steps are both "
                          f"set, and max_steps would silently override epochs: keep one")



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
