"""The README's contract section, kept equal to the declared vocabulary."""

from __future__ import annotations

from pathlib import Path

BEGIN = "<!-- contract: made by `lb-lab schema --update-readme`; edit lab/vocabulary, not here -->"
END = "<!-- contract: end -->"


def contract_block(readme: str) -> str:
    """The generated part of a README's text (between the markers)."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:end].strip("\n") + "\n"


def update(path: Path, markdown: str) -> bool:
    """Rewrite the block in the README at `path`; True when it changed."""
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n\n" + markdown + "\n" + text[end:]
    if new != text:
        path.write_text(new)
    return new != text
