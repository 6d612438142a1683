import sys
import textwrap
from pathlib import Path

import pytest

from curate import registry
from curate.errors import CurateError, RecipeError


def test_unknown_name_lists_valid_ones():
    with pytest.raises(RecipeError) as info:
        registry.verifiers.get("maths")
    assert "unknown verifier 'maths' (did you mean 'math'?)" in str(info.value)
    assert "exact, math, puzzle" in str(info.value)


def test_duplicates_are_refused():
    local: registry.Registry[type] = registry.Registry("thing")
    local.register("a")(int)
    with pytest.raises(CurateError, match="thing 'a' is already registered"):
        local.register("a")(str)


def test_a_class_is_named_once():
    """A stage, backend or verifier class is registered under the name it gives itself; a
    name given as well must agree, and something with no name at all is refused."""
    local: registry.Registry[type] = registry.Registry("thing")

    class Named:
        name = "named"

    local.register()(Named)
    assert local.find("named") is Named
    with pytest.raises(CurateError, match="thing registered as 'other' names itself 'named'"):
        local.register("other")(Named)
    with pytest.raises(CurateError, match="a thing needs a name"):
        local.register()(int)
    assert [name for name, cls in registry.stages.items() if cls.name != name] == []


def test_builtins_are_registered():
    assert {"generate", "verify", "select"} <= set(registry.stages.names())
    assert {"simulated", "openai"} <= set(registry.backends.names())
    assert {"files", "hub", "reasoning_gym"} <= set(registry.sources.names())


def test_entry_point_plugin_registers_a_verifier(tmp_path: Path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) with a curate.plugins entry point."""
    (tmp_path / "curate_demo_plugin.py").write_text(
        textwrap.dedent('''
        from curate import registry
        from curate.verify.exact import ExactVerifier

        @registry.verifiers.register("always_demo")
        class AlwaysDemo(ExactVerifier):
            """A plugin verifier."""
            name = "always_demo"
    ''')
    )
    info = tmp_path / "curate_demo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: curate-demo-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[curate.plugins]\ndemo = curate_demo_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CURATE_PLUGINS")  # the suite runs without plugins; this test loads one
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry.verifiers, "_items", dict(registry.verifiers._items))
    registry.load_all()
    assert "always_demo" in registry.verifiers.names()
    sys.modules.pop("curate_demo_plugin", None)
