"""The method registry: one file per method registers one class by its config name.

Adding a method means adding one file in this package (and listing it in `__init__`) and one entry under
`methods:` in the config. A duplicate or unknown name fails loudly.
"""

from __future__ import annotations

import difflib

from forgetbench.errors import ConfigError

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    name = getattr(cls, "name", None)
    if not name:
        raise TypeError(f"{cls.__qualname__} has no `name`; a method must declare its config name")
    if name in _REGISTRY:
        raise ValueError(f"method '{name}' registered twice: {_REGISTRY[name].__module__} and {cls.__module__}")
    _REGISTRY[name] = cls
    return cls


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def get_method(name: str, where: str = "methods"):
    """The method class registered under `name`; an unknown name names the nearest registered one."""
    if name not in _REGISTRY:
        near = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise ConfigError(f"{where}: unknown method '{name}'{hint}; known methods: {', '.join(method_names())}")
    return _REGISTRY[name]
