"""Docstrings as the Dagster UI shows them: plain text, one line per paragraph."""

from __future__ import annotations

import inspect
import re

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"^(?:[-*•]|\d+[.)])\s")


def ui_description(doc: str | None) -> str:
    """`doc` (a module or function docstring) as clean UI text.

    Backticks are removed, the lines of a wrapped paragraph are joined with single spaces, and
    paragraphs stay apart (a blank line between them). A line that starts a list item (`- `,
    `* `, `1. `) starts a new line of its paragraph. None or blank gives "".
    """
    text = inspect.cleandoc(doc or "").replace("`", "")
    paragraphs = []
    for block in _PARAGRAPH_BREAK.split(text):
        lines: list[str] = []
        for line in (raw.strip() for raw in block.splitlines()):
            if not line:
                continue
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        if lines:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)
