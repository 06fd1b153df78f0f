"""The commands a page (or a lesson) may send, as JSON Schema, from the command table."""

from __future__ import annotations

from lab.vocabulary.types import Schema, constant, record

KIND_TYPES = {"text": "string", "int": "integer", "number": "number", "bool": "boolean",
              "object": "object"}  # fmt: skip


def field_schema(name: str, rule) -> Schema:
    """One field of a command (lab.web.commands.Field) as JSON Schema."""
    schema: Schema = {"type": KIND_TYPES[rule.kind], "description": name.replace("_", " ")}
    if rule.choices:
        schema["enum"] = list(rule.choices)
    if rule.low is not None:
        schema["minimum"] = rule.low
    if rule.high is not None:
        schema["maximum"] = rule.high
    return schema


def command_schemas() -> dict[str, Schema]:
    from lab.web.commands import COMMANDS  # the table the lab dispatches from

    schemas = {}
    for name, action in COMMANDS.items():
        fields = {"action": constant(name, "what to do")} | {
            field: field_schema(field, rule) for field, rule in action.fields.items()
        }
        optional = tuple(field for field, rule in action.fields.items() if not rule.required)
        schemas[name] = record(action.help, fields, optional)
    return schemas
