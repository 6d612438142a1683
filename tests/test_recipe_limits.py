"""Recipes and settings that once ran wild or crashed: each is one clear error now."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app

runner = CliRunner()
BOMB = """name: bomb
source: {kind: files, path: x.jsonl}
teacher:
  backend: simulated
  extra_body:
    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    result = runner.invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "aliases" in result.output and "refused" in result.output
    many = "name: m\nsource: {kind: files, path: x.jsonl}\nx: &x 1\ny: [" + "*x, " * 150 + "]\n"
    path.write_text(many)
    assert "more than 100 YAML aliases" in runner.invoke(app, ["run", str(path)]).output


def test_a_directory_as_recipe_is_one_line(tmp_path: Path):
    result = runner.invoke(app, ["run", str(tmp_path)])
    assert result.exit_code == 1 and "is a directory, not a recipe file" in result.output


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("teacher.samples=true", "must be an integer"),
        ("teacher.samples=99999999999999999999", "must be <= 100000"),
        ("teacher.temperature=.inf", "finite number"),
        ("stages=[generate, verify, generate]", "generate named more than once"),
    ],
)
def test_settings_out_of_bounds_are_refused(make_recipe, tmp_path: Path, setting, message):
    result = runner.invoke(
        app, ["run", str(make_recipe()), "--run-dir", str(tmp_path / "r"), "--set", setting]
    )
    assert result.exit_code in (1, 2), result.output
    assert message in result.output
    assert "internal error" not in result.output


def test_credentials_in_base_url_are_never_saved(make_recipe, tmp_path: Path, monkeypatch):
    from curate.errors import BackendError
    from curate.generate.openai import OpenAIConfig, OpenAITeacher
    from curate.recipe import dump_recipe, load_recipe

    teacher = {"backend": "openai", "model": "m", "base_url": "http://user:s3cret@127.0.0.1:9/v1"}
    recipe = load_recipe(make_recipe(teacher=teacher))
    saved = dump_recipe(recipe)
    assert "s3cret" not in saved and "user:" not in saved
    assert yaml.safe_load(saved.split("\n", 1)[1])["teacher"]["base_url"].startswith("http://***@")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000000000")
    config = OpenAIConfig(**teacher)
    with pytest.raises(BackendError, match="user and password") as caught:
        OpenAITeacher(config)
    assert "s3cret" not in str(caught.value)
    monkeypatch.delenv("OPENAI_API_KEY")
    backend = OpenAITeacher(config)
    assert all("s3cret" not in replica.url for replica in backend.replicas.pool)


def test_warnings_are_printed_as_text_not_markup(capsys):
    import warnings

    from curate.cli import shown_warnings
    from curate.errors import CurateWarning

    with shown_warnings():
        warnings.warn("install it: pip install 'curate[semantic]'", CurateWarning, stacklevel=1)
    assert "pip install 'curate[semantic]'" in capsys.readouterr().err
