"""Every extension point in one place. Built-ins register here when their module is
imported; a third-party package does the same from a module it names in the
``curate.plugins`` entry-point group (``CURATE_PLUGINS=off`` loads none: tests, debugging).

The hooks, each with what an extension provides (tests/example_plugin.py shows every one).
A stage, backend or verifier class is registered under the `name` it gives itself
(``@registry.stages.register()``); sources and benchmarks are given theirs.

- ``stages``: a `curate.stage.Stage` subclass with a `Config` (its recipe section, named
  by `section`), `reads` / `writes` columns (a stage runs after those that make what it
  reads), `after` / `before` stage names for what columns cannot say (curate/order.py), the
  `unit` of work it must see at once (curate/units.py), and
  `publishes`: the columns it adds that dataset/ and the Hub's default and all configs carry.
- ``backends``: a `curate.generate.base.Backend` (teacher) with a `TeacherConfig` subclass
  whose `backend: Literal[name]` selects it; `offline = True` for a batch engine.
- ``verifiers``: a `curate.verify.base.Verifier` with `domains` (claimed under
  `verify.kind: auto`) and an optional `settings_class` (typed settings in `verify:`).
- ``sources``: a `curate.sources.base.Source` with a `RowSourceConfig` subclass whose
  `kind: Literal[name]` selects it.
- ``benchmarks``: a `curate.decontam.benchmarks.Benchmark` (Hub location, private or not).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Generic, TypeVar

from curate.errors import CurateError, RecipeError

if TYPE_CHECKING:
    from curate.decontam.benchmarks import Benchmark
    from curate.generate.base import Backend
    from curate.sources.base import Source
    from curate.stage import Stage
    from curate.verify.base import Verifier

T = TypeVar("T")
PLUGIN_GROUP = "curate.plugins"

BUILTIN_MODULES = (
    "curate.sources.files",
    "curate.sources.hub",
    "curate.sources.gym",
    "curate.generate.simulated",
    "curate.generate.openai",
    "curate.generate.anthropic",
    "curate.generate.vllm",
    "curate.generate.local",
    "curate.generate.stage",
    "curate.verify.math",
    "curate.verify.exact",
    "curate.verify.choice",
    "curate.verify.code",
    "curate.verify.stage",
    "curate.select.difficulty",
    "curate.select.topics",
    "curate.select.stage",
    "curate.filters",
    "curate.dedup",
    "curate.decontam.benchmarks",
    "curate.decontam.stage",
    "curate.review.stage",
)


class Registry(Generic[T]):
    """Named objects of one kind; refuses duplicates and lists valid names on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Add an object under `name`, or under the `name` it gives itself (a stage, backend
        or verifier class), so it is named once; the two, where both are given, agree."""

        def add(obj: T) -> T:
            own = getattr(obj, "name", None)
            key = name or own
            if not isinstance(key, str) or not key:
                raise CurateError(f"a {self.kind} needs a name: register('NAME') or a `name`")
            if isinstance(own, str) and own != key:
                raise CurateError(f"{self.kind} registered as '{key}' names itself '{own}'")
            if key in self._items:
                raise CurateError(f"{self.kind} '{key}' is already registered")
            self._items[key] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        load_all()
        if name not in self._items:
            raise RecipeError(self.unknown_message(name))
        return self._items[name]

    def find(self, name: str) -> T | None:
        """The item, or None when nothing has that name."""
        load_all()
        return self._items.get(name)

    def unknown_message(self, name: str) -> str:
        valid = sorted(self._items)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {self.kind} '{name}'{hint}; valid: {', '.join(valid)}"

    def names(self) -> list[str]:
        load_all()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        load_all()
        yield from sorted(self._items.items())


stages: Registry[type[Stage]] = Registry("stage")
backends: Registry[type[Backend]] = Registry("teacher backend")
verifiers: Registry[type[Verifier]] = Registry("verifier")
sources: Registry[type[Source]] = Registry("source")
benchmarks: Registry[Benchmark] = Registry("benchmark")

_loaded = False


def load_all() -> None:
    """Import the built-ins and every installed plugin, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    if os.environ.get("CURATE_PLUGINS", "").lower() in ("off", "0", "no", "false"):
        return
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            point.load()
        except ImportError as exc:
            raise CurateError(
                f"plugin '{point.name}' ({point.value}) failed to load: {exc}"
            ) from exc


def builtin(obj: object) -> bool:
    """Whether curate itself provides it (a plugin's claim wins over a built-in's)."""
    return str(getattr(obj, "__module__", "")).startswith("curate.")


def first_line(obj: object) -> str:
    """The one-line doc shown by `curate stages`."""
    doc = (obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
