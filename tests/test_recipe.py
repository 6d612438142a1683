from pathlib import Path
from typing import get_origin

import pytest
import yaml

from curate.errors import RecipeError
from curate.recipe import OverrideError, dump_recipe, load_recipe, parse_override
from curate.schema_doc import schema_text


def test_valid_recipe_fills_defaults(make_recipe):
    recipe = load_recipe(make_recipe())
    assert recipe.teacher.samples == 4
    assert recipe.teacher.temperature == 0.6
    assert recipe.source.columns.problem == "question"


def test_unknown_key_names_path_and_valid_keys(make_recipe):
    path = make_recipe(teacher={"backend": "simulated", "sampels": 2})
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "teacher.sampels: unknown key (did you mean 'samples'?)" in message
    assert "valid keys:" in message and "temperature" in message


def test_bound_violation_message(make_recipe):
    with pytest.raises(RecipeError, match=r"--set teacher\.samples=0: must be >= 1, got 0"):
        load_recipe(make_recipe(), ["teacher.samples=0"])


def test_wrong_type_names_key(make_recipe):
    with pytest.raises(
        RecipeError, match=r"--set teacher\.temperature=hot: must be a number, got 'hot'"
    ):
        load_recipe(make_recipe(), ["teacher.temperature=hot"])


def test_unknown_backend_lists_valid_ones(make_recipe):
    with pytest.raises(
        RecipeError,
        match=r"teacher: unknown backend 'gpt'; valid: 'anthropic', 'openai', 'simulated'",
    ):
        load_recipe(make_recipe(teacher={"backend": "gpt", "model": "x"}))


def test_missing_required_key(make_recipe):
    with pytest.raises(RecipeError, match=r"teacher\.base_url: required"):
        load_recipe(make_recipe(teacher={"backend": "openai", "model": "m"}))


def test_set_overrides_scalars_and_flow_lists(make_recipe):
    recipe = load_recipe(
        make_recipe(),
        [
            "teacher.samples=8",
            "teacher.stop=[</answer>, '###']",
            "verify.timeout_s=2.5",
            "select.max_per_problem=2",
        ],
    )
    assert recipe.teacher.samples == 8
    assert recipe.teacher.stop == ["</answer>", "###"]
    assert recipe.verify.timeout_s == 2.5
    assert recipe.select.max_per_problem == 2


def test_set_creates_missing_sections(make_recipe):
    path = make_recipe()
    raw = yaml.safe_load(path.read_text())
    del raw["select"]
    path.write_text(yaml.safe_dump(raw))
    assert load_recipe(path).select is None
    assert load_recipe(path, ["select.max_per_problem=1"]).select.max_per_problem == 1


@pytest.mark.parametrize(
    "item, message",
    [
        ("teacher.samples", "expected KEY.PATH=VALUE"),
        ("=3", "expected KEY.PATH=VALUE"),
        ("teacher..samples=3", "empty name in key path"),
        ("teacher.stop=[a, b", "not valid YAML"),
    ],
)
def test_bad_set_is_a_usage_error(make_recipe, item, message):
    with pytest.raises(OverrideError, match=message):
        load_recipe(make_recipe(), [item])


def test_set_into_a_value_is_refused(make_recipe):
    with pytest.raises(OverrideError, match=r"'teacher\.samples' is a value, not a section"):
        load_recipe(make_recipe(), ["teacher.samples.x=1"])


def test_unknown_set_path_is_reported(make_recipe):
    with pytest.raises(RecipeError, match=r"--set verify\.kindd=math: unknown key"):
        load_recipe(make_recipe(), ["verify.kindd=math"])


def test_yaml_errors_and_missing_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        load_recipe(listing)


def test_secrets_never_saved_or_echoed(make_recipe):
    path = make_recipe(
        teacher={
            "backend": "openai",
            "model": "m",
            "base_url": "http://x/v1",
            "extra_body": {
                "api_key": "hf_abcdefghijklmnopqrstu",
                "note": "sk-abcdefghijklmnopqrstuv",
            },
        }
    )
    text = dump_recipe(load_recipe(path))
    assert "hf_abcdefghijklmnopqrstu" not in text
    assert "sk-abcdefghijklmnopqrstuv" not in text
    assert "api_key_env: OPENAI_API_KEY" in text  # the variable's name is not a secret
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["teacher.max_tokens=hf_abcdefghijklmnopqrstu"])
    assert "hf_abcdefghijklmnopqrstu" not in str(info.value)


def test_parse_override_values():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=x=y") == (["a"], "x=y")
    assert parse_override("a=") == (["a"], "")


def test_schema_lists_every_section_with_descriptions():
    text = schema_text()
    for line in (
        "teacher.samples: int = 4: Samples (traces) per problem.",
        "source.path: str | list[str] (required)",
        "select.max_per_problem: int | null = None",
        "verify.timeout_s: float = 5.0",
    ):
        assert line in text


@pytest.mark.parametrize("name", ["../../../x", "/abs/path", "a/b", "..", ".hidden", "a b"])
def test_a_run_name_is_a_name_not_a_path(make_recipe, name: str):
    """A name never places a run outside runs/ (--run-dir is how a user picks a place)."""
    with pytest.raises(RecipeError, match="must be a name, not a path"):
        load_recipe(make_recipe(), [f"name={name}"])


def test_ordinary_names_are_kept(make_recipe):
    for name in ("gsm8k-distill", "round_2", "v1.5+fix"):
        assert load_recipe(make_recipe(), [f"name={name}"]).name == name


REQUIRED = {
    "path": "problems.jsonl",
    "dataset": "org/problems",
    "tasks": {"basic_arithmetic": 2},
    "model": "org/model",
    "base_url": "http://localhost:8000/v1",
    "classifier": {"backend": "simulated"},
    "measure": "quality",
}
# sections that must ask for something: the one setting each keeps when the rest are null
ASKS = {"difficulty": {"rater": {"backend": "simulated"}}}


def _allows_none(annotation) -> bool:
    return annotation is type(None) or type(None) in getattr(annotation, "__args__", ())


def _nulled(model) -> dict:
    """Every optional setting of a config section set to null, nested sections too."""
    from curate.recipe import _models_in

    data = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            data[name] = REQUIRED[name]
        elif name in ("kind", "backend"):  # the tag a union needs
            data[name] = field.default
        elif _allows_none(field.annotation):
            data[name] = None
        elif len(members := _models_in(field.annotation)) == 1:
            nested = _nulled(members[0])
            data[name] = [nested] if get_origin(field.annotation) is list else nested
    return data


def _every_section(source, teacher) -> dict:
    from curate.recipe import _models_in, recipe_model

    raw = {"name": "nulls", "source": _nulled(source)}
    for name, field in recipe_model().model_fields.items():
        members = _models_in(field.annotation)
        if name in raw or not members:
            continue
        raw[name] = _nulled(teacher if name == "teacher" else members[0]) | ASKS.get(name, {})
    return raw


def test_a_saved_recipe_reads_back_the_same_with_every_optional_setting_null(tmp_path: Path):
    """The run's recipe.yaml is what cluster tasks, publish and review read: a null that
    turns a setting off (filters.language, dedup.near, ...) must stay off."""
    from curate.recipe import _models_in, load_run, recipe_model, validate

    fields = recipe_model().model_fields
    sources, teachers = (
        _models_in(fields["source"].annotation),
        _models_in(fields["teacher"].annotation),
    )
    pairs = [(s, teachers[min(i, len(teachers) - 1)]) for i, s in enumerate(sources)]
    pairs += [(sources[0], t) for t in teachers]
    for source, teacher in pairs:
        recipe = validate(_every_section(source, teacher))
        assert recipe.filters.language is None and recipe.dedup.near is None
        (tmp_path / "recipe.yaml").write_text(dump_recipe(recipe))
        again = load_run(tmp_path)
        assert again.model_dump() == recipe.model_dump(), (source, teacher)
        defaults = validate({"name": "d", "source": _every_section(source, teacher)["source"]})
        (tmp_path / "recipe.yaml").write_text(dump_recipe(defaults))
        assert load_run(tmp_path).model_dump() == defaults.model_dump()


def test_a_recipe_saved_by_a_newer_curate_is_refused_by_name(tmp_path: Path):
    from curate.recipe import load_run

    with pytest.raises(RecipeError, match=r"no recipe\.yaml"):
        load_run(tmp_path)
    (tmp_path / "recipe.yaml").write_text("# curate recipe, schema 99: resolved\nname: x\n")
    with pytest.raises(RecipeError, match="recipe schema 99; this one reads up to 1"):
        load_run(tmp_path)


def test_the_decontamination_judge_is_a_typed_teacher_section_that_reads_back(tmp_path: Path):
    from curate.generate.openai import OpenAIConfig
    from curate.recipe import load_run, validate

    judge = {"backend": "openai", "model": "j", "base_url": "http://127.0.0.1:9/v1"}
    raw = {"name": "j", "source": {"kind": "files", "path": "p.jsonl"}}
    recipe = validate({**raw, "decontaminate": {"judge": judge}})
    assert recipe.decontaminate is not None
    assert isinstance(recipe.decontaminate.judge, OpenAIConfig)
    assert (recipe.decontaminate.judge.temperature, recipe.decontaminate.judge.samples) == (0.0, 1)
    (tmp_path / "recipe.yaml").write_text(dump_recipe(recipe))
    assert load_run(tmp_path).model_dump() == recipe.model_dump()
    with pytest.raises(RecipeError, match=r"decontaminate\.judge\.model"):
        validate({**raw, "decontaminate": {"judge": {"backend": "openai", "base_url": "u"}}})
    assert "decontaminate.judge.model: str (required)" in schema_text()
