"""The method registry: one file per method registers one class by its config name.

Adding a method means adding one file in this package and one entry under `methods:` in the config: the
package imports every module in it when it is imported (`discover`), and a module that defines a method
registers it with `@register`. Which modules are methods is decided by that decorator alone, not by a list:
the shared code (base, posthoc, registry) is imported too and registers nothing. Modules whose name starts
with an underscore are skipped. Method modules import torch inside their functions: the workflow imports
them all while it parses the config, without torch. A duplicate or unknown name fails loudly.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys

from forgetbench.errors import ConfigError

_REGISTRY: dict[str, type] = {}


def _where(cls: type) -> str:
    """`module.Class (file)` of a method class, for the duplicate-name error."""
    path = getattr(sys.modules.get(cls.__module__), "__file__", None) or "unknown file"
    return f"{cls.__module__}.{cls.__qualname__} ({path})"


def register(cls: type) -> type:
    name = getattr(cls, "name", None)
    if not name:
        raise TypeError(f"{cls.__qualname__} has no `name`; a method must declare its config name")
    if name in _REGISTRY:
        raise ValueError(f"method '{name}' registered twice: {_where(_REGISTRY[name])} and {_where(cls)}")
    _REGISTRY[name] = cls
    return cls


def discover(package: str, path) -> list[str]:
    """Import every module of `package` found on `path` (its `__path__`) whose name is a Python name (not an
    editor's `.#talr.py`) that does not start with an underscore, so that each method file registers itself;
    modules already imported are not run again. Returns the modules' full names, by folder of `path`, then
    by file name."""
    found = [f"{package}.{info.name}" for info in pkgutil.iter_modules(path)
             if info.name.isidentifier() and not info.name.startswith("_")]
    for module in found:
        importlib.import_module(module)
    return found


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def get_method(name: str, where: str = "methods"):
    """The method class registered under `name`; an unknown name names the nearest registered one."""
    if name not in _REGISTRY:
        near = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise ConfigError(f"{where}: unknown method '{name}'{hint}; known methods: {', '.join(method_names())}")
    return _REGISTRY[name]
