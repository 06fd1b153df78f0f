"""The whole vocabulary as one JSON Schema document, or as the README's markdown."""

from __future__ import annotations

from lab.vocabulary import messages, recording
from lab.vocabulary.commands import command_schemas
from lab.vocabulary.events import KINDS
from lab.vocabulary.types import Schema, kind_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def document() -> Schema:
    """Every event kind, message and command, as JSON Schema (2020-12)."""
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "Load Balancing Lab vocabulary",
        "description": "Events from the balancer's GET /events; the state and batch "
        "messages the page receives; the commands it sends and their acknowledgement.",
        "$defs": {
            "events": {kind.name: kind.schema() for kind in KINDS},
            "state": messages.state(),
            "batch": messages.batch(),
            "classroom": messages.classroom(),
            "you": messages.you(),
            "acknowledgement": messages.acknowledgement(),
            "commands": command_schemas(),
            "recording": {
                "header": recording.header(),
                "message": recording.message(),
                "end": recording.end(),
                "news": recording.news(),
            },
        },
    }


def markdown() -> str:
    """The README's contract section: one table per event kind, message and command."""
    out = ["### Events", ""]
    out += [
        "The balancer's `GET /events` stream, one JSON object per line, and the `events` "
        "of every `batch`. Fields marked *optional* appear only when they apply.",
        "",
    ]
    for kind in KINDS:
        out += [f"**`{kind.name}`**: {kind.meaning}.", ""]
        out += fields_table(kind.schema())
    out += ["### Messages to the page", ""]
    for name in ("state", "batch", "classroom", "you"):
        schema = getattr(messages, name)()
        out += [f"**`{name}`**: {schema['description']}.", ""]
        out += fields_table(schema)
    out += ["### Commands", ""]
    out += [
        'The page sends `command` with one object, `{"action": ..., fields}`, and gets '
        '`{"ok": true}` or `{"ok": false, "error": "..."}`.',
        "",
        "| action | fields | what it does |",
        "|---|---|---|",
    ]
    for action, schema in command_schemas().items():
        fields = [
            f"`{name}`{'' if name in schema['required'] else '?'} ({kind_of(field)})"
            for name, field in schema["properties"].items()
            if name != "action"
        ]
        what = schema["description"].replace("|", "\\|")
        out.append(f"| `{action}` | {', '.join(fields) or 'none'} | {what} |")
    return "\n".join(out) + "\n"


def fields_table(schema: Schema) -> list[str]:
    rows = ["| field | type | meaning |", "|---|---|---|"]
    for name, field in schema["properties"].items():
        optional = "" if name in schema["required"] else " *optional*"
        meaning = field.get("description", "").replace("|", "\\|")
        rows.append(f"| `{name}`{optional} | {kind_of(field)} | {meaning} |")
    return rows + [""]
