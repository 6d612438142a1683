"""The install a new user copies from the README works as written: no warnings, no extras."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_extra_we_ask_of_a_dependency_exists():
    """pip warns 'does not provide the extra' on every install when the spelling is off."""
    for requirement in PYPROJECT["project"]["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.\-]+)\[([^\]]+)\]", requirement)
        if not match:
            continue
        offered = metadata.metadata(match.group(1)).get_all("Provides-Extra") or []
        for extra in match.group(2).split(","):
            assert extra.strip() in offered, f"{match.group(1)} offers {offered}, not {extra}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_types_check_without_the_extras():
    """mypy runs in the README's test command, where no extra is installed: every module an
    extra brings must be listed as allowed to be missing."""
    optional = {"sentence_transformers", "transformers", "vllm", "torch"}
    used = set().union(*(_imported_modules(p) for p in (ROOT / "curate").rglob("*.py")))
    allowed = set()
    for override in PYPROJECT["tool"]["mypy"]["overrides"]:
        if override.get("ignore_missing_imports"):
            allowed.update(m.removesuffix(".*") for m in override["module"])
    assert (used & optional) - allowed == set()


def test_the_test_extra_needs_no_torch_or_transformers():
    heavy = {"torch", "transformers", "sentence-transformers", "vllm", "trl"}
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    names = {_normal(re.split(r"[<>=\[ ;]", r)[0]) for r in test_extra}
    assert names & heavy == set()


def test_ci_runs_the_readme_test_command_first():
    """.ci/run reads the command from the README and runs it before installing extras."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("Install and run the tests", 1)[1].split("```bash\n", 1)[1]
    command = command.split("\n", 1)[0]
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip("no .ci/run in this checkout")
    script = ci.read_text(encoding="utf-8")
    printed = subprocess.run(
        ["bash", "-c", script.split("rm -rf .venv", 1)[0] + 'printf %s "$test_command"'],
        capture_output=True,
        text=True,
        cwd=ROOT / ".ci",  # the script cds to its parent
        check=True,
    ).stdout
    assert printed == command
    step_one = script.index('bash -euo pipefail -c "$test_command"')
    assert step_one < script.index("pip install -q")
