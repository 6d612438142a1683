"""YAML recipe -> typed config, in one place: parsing, --set overrides, errors, secrets."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from curate import registry
from curate.decontam.stage import DecontamConfig
from curate.dedup import DedupConfig, TraceDedupConfig
from curate.errors import RecipeError
from curate.filters import FiltersConfig
from curate.generate.base import TeacherConfig
from curate.loop.settings import LoopConfig
from curate.order import pipeline_order
from curate.publish.settings import PublishConfig
from curate.review.stage import ReviewConfig
from curate.select.config import DifficultyConfig, SelectConfig, TopicsConfig
from curate.sources.base import RowSourceConfig
from curate.stage import Config, union_of
from curate.verify.stage import VerifyConfig

PROBLEM_SHARD = 256  # problems per shard when a teacher generates (k traces each)
TRACE_SHARD = 8192  # existing traces per shard


class RunConfig(Config):
    """How the runner lays out work."""

    shard_size: int | None = Field(
        None,
        ge=1,
        description="Rows per ledger shard, the most a crash makes a stage redo: problems "
        f"when a teacher generates (default {PROBLEM_SHARD}), traces when the source reads "
        f"existing ones (default {TRACE_SHARD}: each shard costs a few file reads and writes "
        "per stage, and a million traces in small shards spend their time on those).",
    )
    problems: str | None = Field(
        None,
        description="A file of problem ids, one per line: only these problems are read "
        "(the loop's rounds use it).",
    )

    volatile = frozenset({"shard_size", "problems"})  # the ids themselves count, not the path

    def shard_rows(self, traces: bool) -> int:
        """Rows per shard: the one set, else the default for problems or for traces."""
        if self.shard_size is not None:
            return self.shard_size
        return TRACE_SHARD if traces else PROBLEM_SHARD


class Recipe(Config):
    """A whole recipe: the run's settings, its source and each stage's section.

    The built-in sections are typed here; `recipe_model()` makes the class that validates
    a recipe, where the source and teacher take every registered kind and each plugin
    stage gets a section of its own (read with `section(name)`)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
        max_length=200,
        description="Recipe name (letters, digits, . _ + -; no path): the default run "
        "directory is runs/NAME (--run-dir picks another place).",
    )
    seed: int = Field(0, description="Seed for everything random in the run.")
    round: int = Field(0, ge=0, description="Self-improvement round this run belongs to.")
    run: RunConfig = Field(default_factory=RunConfig, description="Runner settings.")
    publish: PublishConfig = Field(
        default_factory=PublishConfig, description="Hub repository and card."
    )
    loop: LoopConfig | None = Field(None, description="Self-improvement rounds (`curate loop`).")
    source: RowSourceConfig = Field(description="Where problems come from.")
    stages: list[str] | None = Field(
        None, description="Stage order; default: every configured stage, in order."
    )
    dedup: DedupConfig | None = None
    decontaminate: DecontamConfig | None = None
    teacher: TeacherConfig | None = None
    verify: VerifyConfig | None = None
    difficulty: DifficultyConfig | None = None
    topics: TopicsConfig | None = None
    select: SelectConfig | None = None
    trace_dedup: TraceDedupConfig | None = None
    filters: FiltersConfig | None = None
    review: ReviewConfig | None = None

    def section(self, name: str) -> Any:
        """A stage's section by its recipe key (a plugin's too); None when not configured."""
        return getattr(self, name, None)

    def stage_names(self) -> list[str]:
        """The stages that run: `stages:` as given, else every configured one in order."""
        if self.stages is not None:
            for name in self.stages:
                registry.stages.get(name)
            twice = sorted({name for name in self.stages if self.stages.count(name) > 1})
            if twice:
                raise RecipeError(f"stages: {', '.join(twice)} named more than once")
            return list(self.stages)
        configured = {
            name: cls
            for name, cls in registry.stages.items()
            if self.section(cls.section) is not None
        }
        return pipeline_order(configured)

    def published_columns(self) -> tuple[str, ...]:
        """Columns the run's stages add for the dataset and the published configs to carry
        (a plugin stage's own, beside the built-in ones every dataset has)."""
        found: list[str] = []
        for name in self.stage_names():
            found += [c for c in registry.stages.get(name).publishes if c not in found]
        return tuple(found)


@cache
def recipe_model() -> type[Recipe]:
    """The Recipe class that validates recipes: every registered source kind, teacher backend
    and stage section (plugins' too), each described as `curate recipe schema` shows it."""
    sources = [cls.config_class for _, cls in registry.sources.items()]
    fields: dict[str, Any] = {
        "source": (union_of(sources, "kind"), Field(description="Where problems come from.")),
    }
    for name, stage in registry.stages.items():
        fields[stage.section] = (
            stage.config_type() | None,
            Field(None, description=f"Config of the '{name}' stage: {registry.first_line(stage)}"),
        )
    model: type[Recipe] = create_model("Recipe", __base__=Recipe, **fields)
    return model


MOST_ALIASES = 100  # a recipe repeats a section by anchor a few times; a bomb, thousands


class AliasBomb(Exception):
    """A YAML text whose aliases would expand without bound."""


class BoundedLoader(yaml.SafeLoader):
    """yaml's safe loader, refusing texts with more aliases (*name) than a recipe needs: nested
    anchors expand exponentially (a 747-byte text can take gigabytes)."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MOST_ALIASES:
                raise AliasBomb(f"more than {MOST_ALIASES} YAML aliases (*name): refused")
        return super().compose_node(parent, index)


MOST_NODES = 200_000  # values in a recipe once its aliases are expanded


def bounded_yaml(text: str) -> Any:
    """The YAML text's data, refused when its aliases are too many or expand too far (what
    reads the recipe later walks every alias in full)."""
    loader = BoundedLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if expanded_size(data, MOST_NODES) > MOST_NODES:
        raise AliasBomb(f"its aliases (*name) expand to more than {MOST_NODES:,} values: refused")
    return data


def expanded_size(data: Any, limit: int) -> int:
    """Values in data with every shared part counted each time it appears (stops past limit)."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_recipe(path: Path | str, overrides: Sequence[str] = ()) -> Recipe:
    """Read a YAML recipe, apply `--set` overrides, and validate it."""
    path = Path(path)
    try:
        raw = bounded_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a directory, not a recipe file") from None
    except AliasBomb as exc:
        raise RecipeError(f"{path}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML ({_one_line(str(exc))})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections, got {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, label=str(path), overrides=overrides)


def validate(raw: dict[str, Any], label: str = "recipe", overrides: Sequence[str] = ()) -> Recipe:
    """The typed recipe; errors name the key and whether it came from the file or a --set
    (a bad --set is a usage error: OverrideError, exit code 2)."""
    model = recipe_model()
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        entries = error_entries(exc, raw, model)
    from_set, from_file = [], []
    for path, message in entries:
        item = _override_for(path, overrides)
        if item is None:
            from_file.append(message)
        else:
            own = ".".join(path) + ": "  # the --set item already names the key
            from_set.append(f"--set {_shown_item(item)}: {message.removeprefix(own)}")
    if from_set:
        raise OverrideError("; ".join(from_set + [f"{label}: {m}" for m in from_file]))
    raise RecipeError(f"{label}: " + "; ".join(from_file))


def _shown_item(item: str) -> str:
    """A --set item as it may be echoed: a secret-looking value becomes ***."""
    key, _, value = item.partition("=")
    return f"{key}=***" if is_secret(key.split(".")[-1], value) else item


def _override_for(path: list[str], overrides: Sequence[str]) -> str | None:
    """The --set item that wrote the key at path (or a section above it), if any."""
    for item in reversed(overrides):  # the last --set of a key wins
        parts, _ = parse_override(item)
        if path[: len(parts)] == parts:
            return item
    return None


class OverrideError(RecipeError):
    """A --set argument is malformed (a usage error: exit code 2)."""


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=c` -> (['a', 'b'], value parsed as a YAML scalar or flow collection)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise OverrideError(f"--set {item!r}: expected KEY.PATH=VALUE")
    parts = key.strip().split(".")
    if any(not part for part in parts):
        raise OverrideError(f"--set {item!r}: empty name in key path '{key}'")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        message = f"--set {item!r}: value is not valid YAML ({_one_line(str(exc))})"
        raise OverrideError(message) from None
    return parts, value


def apply_override(raw: dict[str, Any], item: str) -> None:
    parts, value = parse_override(item)
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise OverrideError(f"--set {item!r}: '{where}' is a value, not a section")
        node = child
    node[parts[-1]] = value


MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "missing": "required",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "literal_error": "must be one of {expected}",
    "union_tag_invalid": "unknown {discriminator} '{tag}'; valid: {expected_tags}",
    "union_tag_not_found": "needs a '{discriminator}' key",
    "string_pattern_mismatch": "must match {pattern}",
}
# Messages for one key, where the generic one would not say what is wrong
KEY_MESSAGES = {
    ("name", "string_pattern_mismatch"): "must be a name, not a path (letters, digits and "
    ". _ + -, starting with a letter or digit); --run-dir picks where the run goes",
}


def describe_errors(exc: ValidationError, raw: Any, model: type[BaseModel]) -> list[str]:
    """Pydantic errors as `key.path: what was expected, got value` lines."""
    return [message for _, message in error_entries(exc, raw, model)]


def error_entries(
    exc: ValidationError, raw: Any, model: type[BaseModel]
) -> list[tuple[list[str], str]]:
    """(key path, `key.path: what was expected, got value`) for each pydantic error."""
    entries = []
    for error in exc.errors():
        path = _input_path(error["loc"], raw)
        where = ".".join(path) or "recipe"
        kind = error["type"]
        ctx = dict(error.get("ctx") or {})
        if kind == "extra_forbidden":
            entries.append((path, f"{where}: unknown key{_valid_keys(path, model, raw)}"))
            continue
        ctx = {k: str(v).strip("'") if k in ("discriminator", "tag") else v for k, v in ctx.items()}
        if str(ctx.get("discriminator", "")).endswith("()"):  # a section read by a function
            ctx["discriminator"] = "kind"
        template = KEY_MESSAGES.get((where, kind)) or MESSAGES.get(kind)
        message = template.format(**ctx) if template else error["msg"].removeprefix("Value error, ")
        if kind not in {"missing", "union_tag_invalid", "union_tag_not_found"}:
            message += f", got {_shown(error.get('input'), path)}"
        entries.append((path, f"{where}: {message}"))
    return entries


def _input_path(loc: tuple[int | str, ...], raw: Any) -> list[str]:
    """Error locations minus the union tags pydantic inserts, matched against the input."""
    path: list[str] = []
    node = raw
    for depth, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(str(part))
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
            path.append(str(part))
        elif isinstance(node, dict) and not _is_tag(node, part) and depth == len(loc) - 1:
            path.append(str(part))  # a missing key: still the right name
            node = None
    return path


def _is_tag(node: dict[str, Any], part: int | str) -> bool:
    return part in (node.get("kind"), node.get("backend")) or "[" in str(part)


def _valid_keys(path: list[str], model: type[BaseModel], raw: Any) -> str:
    """' (valid: ...)' for the section an unknown key sits in (the member of a union that the
    input's kind or backend selects), with a close match, or the member the key belongs to."""
    section: Any = model
    node = raw
    members: list[type[BaseModel]] = []
    for part in path[:-1]:
        fields = getattr(section, "model_fields", None)
        if not fields or part not in fields:
            return ""
        node = node.get(part) if isinstance(node, dict) else None
        members = _models_in(fields[part].annotation)
        section = _selected(members, node)
    names = sorted(getattr(section, "model_fields", {}))
    if not names:
        return ""
    key = path[-1]
    owners = [_tag_of(m) for m in members if m is not section and key in m.model_fields]
    if owners:
        hint = f" for {_tag_of(section)} ('{key}' belongs to {', '.join(owners)})"
    else:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; valid keys: {', '.join(names)}"


TAG_KEYS = ("kind", "backend")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every config model an annotation allows (one, or the members of a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _selected(members: list[type[BaseModel]], node: Any) -> Any:
    """The member the input names by its kind or backend; else the first."""
    if isinstance(node, dict):
        for member in members:
            if _tag_of(member, bare=True) in {str(node.get(k)) for k in TAG_KEYS}:
                return member
    return members[0] if members else None


def _tag_of(member: Any, bare: bool = False) -> str:
    for key in TAG_KEYS:
        field = getattr(member, "model_fields", {}).get(key)
        if field is not None and isinstance(field.default, str):
            return field.default if bare else f"{key} '{field.default}'"
    return "" if bare else getattr(member, "__name__", "this section")


SECRET_KEY = re.compile(r"(^|_)(api_key|key|token|secret|password|authorization)$", re.I)
SECRET_VALUE = re.compile(r"^(hf_|sk-|sk_|ghp_|Bearer )[A-Za-z0-9_\-]{12,}")


def is_secret(key: str, value: Any) -> bool:
    if isinstance(value, str) and SECRET_VALUE.match(value):
        return True
    return bool(SECRET_KEY.search(key)) and value not in (None, "")


def redact(value: Any, key: str = "") -> Any:
    """A copy with secret-looking values replaced, for anything saved or printed."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and URL_CREDENTIALS.search(value):
        return URL_CREDENTIALS.sub(r"\1***@", value)  # http://user:pw@host: never saved
    return "***" if is_secret(key, value) else value


URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


def _shown(value: Any, path: list[str]) -> str:
    if path and is_secret(path[-1], value):
        return "***"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


RECIPE_SCHEMA = 1  # bump when a saved recipe's meaning changes
HEADER = f"# curate recipe, schema {RECIPE_SCHEMA}: resolved, secrets removed\n"


def dump_recipe(recipe: BaseModel) -> str:
    """The resolved recipe as YAML, secrets removed, read back as exactly the same recipe:
    a null that turns a setting off is kept (only sections absent by default are left out)."""
    return HEADER + yaml.safe_dump(recipe_data(recipe), sort_keys=False, allow_unicode=True)


def recipe_data(recipe: BaseModel) -> dict[str, Any]:
    """The recipe as saved and shown: every setting, nulls included, secrets removed."""
    data = recipe.model_dump(mode="json")
    return dict(redact({key: value for key, value in data.items() if value is not None}))


def load_run(run_dir: Path) -> Recipe:
    """The recipe a run was made with (RUN/recipe.yaml), as the run saved it."""
    path = Path(run_dir) / "recipe.yaml"
    if not path.is_file():
        raise RecipeError(f"{run_dir}: no recipe.yaml (is this a run directory?)")
    first = path.read_text(encoding="utf-8").partition("\n")[0]
    schema = re.match(r"# curate recipe, schema (\d+)", first)
    if schema is not None and int(schema.group(1)) > RECIPE_SCHEMA:
        raise RecipeError(
            f"{path}: saved by a newer curate (recipe schema {schema.group(1)}; this one reads "
            f"up to {RECIPE_SCHEMA}): upgrade curate"
        )
    return load_recipe(path)
