"""`curate recipe schema`: every recipe key, generated from the config models themselves."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from curate.recipe import recipe_model


def schema_text() -> str:
    lines = ["# Recipe keys (type = default: description)", ""]
    lines.extend(_model_lines(recipe_model(), ""))
    return "\n".join(lines)


def _model_lines(model: type[BaseModel], prefix: str) -> list[str]:
    lines: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        variants = _models(field.annotation)
        if len(variants) > 1:
            lines.append(f"{path}: one of {len(variants)} kinds: {field.description or ''}")
            for variant in variants:
                tag = _tag(variant)
                lines.append(f"  [{path} with {tag}]")
                lines.extend("  " + line for line in _model_lines(variant, f"{path}."))
        elif variants:
            lines.append(f"{path}: {field.description or ''}")
            lines.extend(_model_lines(variants[0], f"{path}."))
        else:
            lines.append(
                f"{path}: {_type_name(field.annotation)}{_default(field)}"
                f": {field.description or ''}"
            )
    return lines


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models(arg))
    return found


def _tag(model: type[BaseModel]) -> str:
    for key in ("kind", "backend"):
        field = model.model_fields.get(key)
        if field is not None and field.default is not PydanticUndefined:
            return f"{key}: {field.default}"
    return model.__name__


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        return f" = {field.default!r}"
    if field.default_factory is not None:
        return f" = {field.default_factory()!r}"  # type: ignore[call-arg]
    return " (required)"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(annotation))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))
