"""The few kinds of value the vocabulary is made of, written as JSON Schema fragments.

Every fragment carries its meaning (`description`), so the same declaration
prints as JSON Schema, as the README's tables, and validates real messages.
"""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]


def text(meaning: str, choices: tuple[str, ...] | None = None) -> Schema:
    schema: Schema = {"type": "string", "description": meaning}
    if choices:
        schema["enum"] = list(choices)
    return schema


def whole(meaning: str, low: int | None = None, high: int | None = None) -> Schema:
    schema: Schema = {"type": "integer", "description": meaning}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def number(meaning: str, low: float | None = None, high: float | None = None) -> Schema:
    schema: Schema = {"type": "number", "description": meaning}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def flag(meaning: str) -> Schema:
    return {"type": "boolean", "description": meaning}


def constant(value: str | bool, meaning: str) -> Schema:
    return {"const": value, "description": meaning}


def maybe(schema: Schema) -> Schema:
    """The same value, or null."""
    inner = {key: value for key, value in schema.items() if key != "description"}
    return {"description": schema.get("description", ""), "anyOf": [inner, {"type": "null"}]}


def listing(item: Schema, meaning: str) -> Schema:
    return {"type": "array", "items": item, "description": meaning}


def mapping(value: Schema, meaning: str) -> Schema:
    """An object whose keys are names (backends, statuses) and whose values are alike."""
    return {"type": "object", "additionalProperties": value, "description": meaning}


def record(
    meaning: str, fields: dict[str, Schema], optional: tuple[str, ...] = (), closed: bool = True
) -> Schema:
    """An object with named fields; all are required but the `optional` ones.

    `closed` refuses fields that are not declared, so a producer that starts
    sending a new field must declare it first.
    """
    unknown = set(optional) - set(fields)
    if unknown:
        raise ValueError(f"optional fields not declared: {sorted(unknown)}")
    return {
        "type": "object",
        "description": meaning,
        "properties": fields,
        "required": [name for name in fields if name not in optional],
        "additionalProperties": not closed,
    }


def anything(meaning: str) -> Schema:
    return {"description": meaning}


def kind_of(schema: Schema) -> str:
    """A short name for a fragment's type, for the markdown tables."""
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{choice}`" for choice in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(kind_of(option) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {kind_of(schema['items'])}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {kind_of(schema['additionalProperties'])}"
    names = {"string": "text", "integer": "whole number", "number": "number",
             "boolean": "true/false", "object": "object", "null": "null"}  # fmt: skip
    return names.get(str(kind), "any")
