"""The config's schema (workflow/schemas/config.schema.yaml), loaded once: keys it does not know (with the nearest
known key), its first error as one line naming the file and the key, and its defaults filled in.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

import jsonschema
import yaml
from snakemake.utils import validate

from forgetbench.config.file import origin, visible_character
from forgetbench.errors import ConfigError


# Keys an earlier version read, and what replaced them: a config written for it fails naming the new key.
RENAMED = {"training.dtype": "training.precision (fp32, bf16-mixed = dtype bfloat16's autocast, or bf16)"}


def find_unknown_keys(config: dict, schema: dict, where: str, overrides: dict | None = None) -> None:
    """Reject keys the schema does not know, naming the nearest known key (a misspelling is the usual cause) and
    any invisible character in the key (a no-break space pasted from a web page); a key given with --config
    (`overrides`) names the command line."""

    def walk(node, sub, path):
        if not isinstance(node, dict) or not isinstance(sub, dict):
            return
        if "$ref" in sub:
            sub = _resolve(schema, sub["$ref"])
        props = sub.get("properties", {})
        for key, value in node.items():
            if key in props:
                walk(value, props[key], f"{path}.{key}" if path else key)
            elif isinstance(sub.get("additionalProperties"), dict):
                walk(value, sub["additionalProperties"], f"{path}.{key}" if path else key)
            elif sub.get("additionalProperties") is False:
                full = f"{path}.{key}" if path else key
                here = origin(where, full, overrides)
                if full in RENAMED:
                    raise ConfigError(f"{here}: '{full}' is now {RENAMED[full]}")
                raise ConfigError(f"{here}: unknown key {_shown_key(full)}{_key_hint(str(key), props)}")

    walk(config, schema, "")


def _shown_key(key: str) -> str:
    """The key in quotes, with each invisible character (a no-break space, a zero-width space, a tab) written
    out: 'learning_rates' with a no-break space after it, printed as is, looks like a known key."""
    hidden = [ch for ch in dict.fromkeys(key) if not ch.isprintable() or (ch.isspace() and ch != " ")]
    if not hidden:
        return f"'{key}'"
    escaped = "".join(f"\\u{ord(ch):04x}" if ch in hidden else ch for ch in key)
    return f"'{escaped}' (it holds {', '.join(visible_character(ch) for ch in hidden)}, an invisible character)"


def _key_hint(key: str, props) -> str:
    """The nearest known key, matched with invisible characters and surrounding spaces taken out."""
    plain = "".join(ch for ch in key if ch.isprintable() and not ch.isspace())
    near = difflib.get_close_matches(plain, props, n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else f"; known keys: {', '.join(props)}"


def _resolve(schema: dict, ref: str) -> dict:
    node = schema
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


@lru_cache(maxsize=None)
def load_schema(path: str) -> dict:
    """The schema, read once per parse (a cached object: never modify it)."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def fill_defaults(config: dict, path: str) -> None:
    """Snakemake's own validation, which fills the schema's defaults into `config` in place (check_schema has
    already refused the first error in one line). It reads the file itself: it takes a path, not a schema."""
    validate(config, path)



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


# The schema's name pattern in words: a regular expression tells a new user little.
PATTERN_WORDS = {"^[A-Za-z0-9][A-Za-z0-9._-]*$": (
    "a name may hold letters, digits, '.', '_' and '-' only, and starts with a letter or digit", r"[A-Za-z0-9._-]")}


def _pattern_message(error) -> str | None:
    """A name that does not match the schema's pattern, said in words with the characters at fault."""
    words = PATTERN_WORDS.get(error.validator_value) if error.validator == "pattern" else None
    if words is None or not isinstance(error.instance, str):
        return None
    rule, allowed = words
    bad = sorted({ch for ch in error.instance if not re.fullmatch(allowed, ch)})
    shown = ", ".join(visible_character(ch) for ch in bad) if bad else f"its first character {error.instance[:1]!r}"
    return f"{error.instance!r} is not a valid name: {rule} (it holds {shown})"


def check_schema(config: dict, schema: dict, where: str, overrides: dict | None = None) -> None:
    """The first schema error, as one line: file (or command line), key, what is wrong and the fix where it is
    known."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    message = _pattern_message(error) or error.message
    message = message if len(message) <= 200 else message[:200] + "…"
    key = _key_path(error)
    raise ConfigError(f"{origin(where, key, overrides)}: {key}: {message}{_hint(error)}")

