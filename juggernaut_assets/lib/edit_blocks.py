"""Edits proposed by a model, as text blocks: parsing them and applying them exactly (pure).

Two block kinds, each after a line holding only the file's path (optionally inside a ``` fence):

    path/to/file.py
    <<<<<<< SEARCH
    lines exactly as they are in the file
    =======
    the lines that replace them
    >>>>>>> REPLACE

    path/to/new_file.py
    <<<<<<< NEW FILE
    the whole content of a file that does not exist yet
    >>>>>>> NEW FILE

A SEARCH block applies only when its SEARCH lines occur exactly once in the file, starting at
the beginning of a line; an empty SEARCH (like a NEW FILE block) creates a file that does not
exist. Blocks apply in order, each to the text the blocks before it left. A block that does not
apply, or whose path is not a plain relative path inside the repository, is returned with the
reason instead; nothing is guessed or matched loosely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
NEW_FILE = re.compile(r"^<{5,9} ?NEW FILE\s*$")
DIVIDER = re.compile(r"^={5,9}\s*$")
REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")
END_NEW_FILE = re.compile(r"^>{5,9} ?NEW FILE\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
_MARKERS = (SEARCH, NEW_FILE, DIVIDER, REPLACE, END_NEW_FILE)
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class MalformedAnswer(ValueError):
    """The answer holds no usable blocks; the message says what is wrong, for the model too."""


@dataclass(frozen=True)
class EditBlock:
    path: str
    search: str
    replace: str
    new_file: bool = False
    """True for a NEW FILE block (whole content); an empty SEARCH also creates a file."""

    @property
    def creates(self) -> bool:
        return self.new_file or self.search == ""

    def render(self) -> str:
        """The block as the model wrote it (normalised markers), to quote it back."""
        if self.new_file:
            return f"{self.path}\n<<<<<<< NEW FILE\n{_ended(self.replace)}>>>>>>> NEW FILE\n"
        return (
            f"{self.path}\n<<<<<<< SEARCH\n{_ended(self.search)}=======\n"
            f"{_ended(self.replace)}>>>>>>> REPLACE\n"
        )


@dataclass(frozen=True)
class FailedBlock:
    block: EditBlock
    reason: str


@dataclass
class Applied:
    """The outcome of applying blocks: the texts they produced, and the blocks that failed."""

    files: dict[str, str] = field(default_factory=dict)
    """Every file a block touched, path → its text after the blocks that applied."""
    applied: list[EditBlock] = field(default_factory=list)
    failed: list[FailedBlock] = field(default_factory=list)

    def changed(self, originals: Mapping[str, str | None]) -> dict[str, str]:
        """The files whose text differs from `originals` (a missing or None original is new)."""
        return {p: t for p, t in self.files.items() if originals.get(p) != t}


def _ended(text: str) -> str:
    return text if text == "" or text.endswith("\n") else text + "\n"


def _lines(text: str) -> list[str]:
    """Lines with their `\\n` (only `\\n` splits: other separators are content)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _clean_path(line: str) -> str:
    """A path line as models write it: without `#`, backticks, bold markers or a trailing colon."""
    path = line.strip().lstrip("#").strip()
    path = path.strip("`*").strip()
    path = path.removesuffix(":").strip().strip("`*").strip()
    return path


def _is_marker(line: str) -> bool:
    bare = line.rstrip("\n")
    return any(m.match(bare) for m in _MARKERS)


def _path_before(lines: list[str], index: int) -> str | None:
    """The path written on the line before a block's opening marker (skipping one fence line)."""
    at = index - 1
    if at >= 0 and FENCE.match(lines[at]):
        at -= 1
    if at < 0:
        return None
    candidate = lines[at].rstrip("\n")
    if not candidate.strip() or _is_marker(candidate) or FENCE.match(candidate):
        return None
    return _clean_path(candidate) or None


def parse_blocks(answer: str) -> list[EditBlock]:
    """The blocks of an answer, in order. Raises `MalformedAnswer` when there are none, or when
    a block is unterminated, lacks its divider, or names no file."""
    lines = _lines(answer)
    blocks: list[EditBlock] = []
    i = 0
    while i < len(lines):
        bare = lines[i].rstrip("\n")
        opens_search, opens_file = SEARCH.match(bare), NEW_FILE.match(bare)
        if not (opens_search or opens_file):
            if DIVIDER.match(bare) or REPLACE.match(bare) or END_NEW_FILE.match(bare):
                raise MalformedAnswer(
                    f"line {i + 1} ('{bare.strip()}') is a block marker outside any block: "
                    "every block opens with '<<<<<<< SEARCH' or '<<<<<<< NEW FILE'"
                )
            i += 1
            continue
        number = len(blocks) + 1
        path = _path_before(lines, i)
        if path is None:
            if not blocks:
                raise MalformedAnswer(
                    f"block {number} names no file: put the file's path alone on the line "
                    "before '<<<<<<< SEARCH' (or '<<<<<<< NEW FILE')"
                )
            path = blocks[-1].path
        where = f"block {number} ({path})"
        if opens_file:
            body, i = _section(lines, i + 1, END_NEW_FILE, where, ">>>>>>> NEW FILE")
            blocks.append(EditBlock(path, "", body, new_file=True))
            continue
        search, i = _section(lines, i + 1, DIVIDER, where, "=======")
        replace, i = _section(lines, i, REPLACE, where, ">>>>>>> REPLACE")
        blocks.append(EditBlock(path, search, replace))
    if not blocks:
        raise MalformedAnswer(
            "the answer holds no edit blocks: reply with SEARCH/REPLACE blocks "
            "(or NEW FILE blocks for new files), each after a line holding the file's path"
        )
    return blocks


def _section(
    lines: list[str], start: int, end: re.Pattern[str], where: str, wanted: str
) -> tuple[str, int]:
    """The text from `start` up to the line matching `end`, and the index after that line.

    A line that opens a block (or closes one of the other kind) before `end` means a marker is
    missing. A `=======` line is content except in a SEARCH section, which it ends.
    """
    unexpected = [m for m in (SEARCH, NEW_FILE, REPLACE, END_NEW_FILE) if m is not end]
    for j in range(start, len(lines)):
        bare = lines[j].rstrip("\n")
        if end.match(bare):
            return "".join(lines[start:j]), j + 1
        if any(m.match(bare) for m in unexpected):
            raise MalformedAnswer(
                f"{where} is malformed: found '{bare.strip()}' where '{wanted}' was expected"
            )
    raise MalformedAnswer(f"{where} is unterminated: the answer ends before '{wanted}'")


def path_problem(path: str) -> str | None:
    """None for a plain relative path inside the repository, else why it is refused."""
    if not path or not path.strip():
        return "the path is empty"
    if path != path.strip() or any(ord(c) < 32 for c in path):
        return "the path has surrounding spaces or control characters"
    if "\\" in path:
        return "the path uses backslashes: write it with '/'"
    if path.startswith("/") or _WINDOWS_DRIVE.match(path) or path.startswith("~"):
        return "the path is absolute: give it relative to the repository root"
    parts = path.split("/")
    if any(p == ".." for p in parts):
        return "the path leaves the repository ('..')"
    if any(p.lower() == ".git" for p in parts):
        return "the path is inside .git/"
    if path.endswith("/") or any(p == "" for p in parts):
        return "the path is not a file path (empty component or trailing '/')"
    return None


def normalise_path(path: str) -> str:
    """`./a/./b` → `a/b`; nothing else changes (check the result with `path_problem`)."""
    return "/".join(p for p in path.split("/") if p != ".")


def _occurrences(text: str, search: str) -> list[int]:
    """Offsets where `search` starts at the beginning of a line of `text` (overlaps counted)."""
    found, start = [], 0
    while True:
        at = text.find(search, start)
        if at < 0:
            return found
        if at == 0 or text[at - 1] == "\n":
            found.append(at)
        start = at + 1


def _apply_one(text: str | None, block: EditBlock) -> tuple[str | None, str | None]:
    """(new text, None) when the block applies to `text` (None: no such file), else
    (None, reason)."""
    if block.creates:
        if text is not None:
            kind = "a NEW FILE block" if block.new_file else "an empty SEARCH"
            return None, (
                f"{block.path} already exists: {kind} only creates files; change an existing "
                "file with SEARCH/REPLACE blocks"
            )
        return block.replace, None
    if text is None:
        return None, (
            f"{block.path} does not exist: create it with a NEW FILE block, or use the path "
            "of a file you were shown"
        )
    search, replace = block.search, block.replace
    if "\r\n" in text and "\r\n" not in search:
        search, replace = search.replace("\n", "\r\n"), replace.replace("\n", "\r\n")
    newline = "\r\n" if "\r\n" in text else "\n"
    padded = text if text.endswith("\n") or text == "" else text + newline
    hits = _occurrences(padded, search)
    if not hits:
        return None, (
            f"the SEARCH lines do not occur in {block.path}: they must match the file's "
            "current lines exactly (spaces, indentation, comments and all)"
        )
    if len(hits) > 1:
        return None, (
            f"the SEARCH lines occur {len(hits)} times in {block.path}: add surrounding "
            "lines so that they match exactly one place"
        )
    at = hits[0]
    result = padded[:at] + replace + padded[at + len(search) :]
    if padded is not text and result.endswith(newline):
        result = result[: -len(newline)]
    return result, None


def apply_blocks(blocks: Sequence[EditBlock], files: Mapping[str, str | None]) -> Applied:
    """Apply `blocks` in order to `files` (path → current text, None when it does not exist).

    Every block either applies exactly or is returned in `failed` with the reason; the blocks
    that applied stay applied. A path not in `files` counts as a file that does not exist.
    """
    outcome = Applied()
    current: dict[str, str | None] = dict(files)
    for block in blocks:
        path = normalise_path(block.path)
        problem = path_problem(path)
        if problem:
            outcome.failed.append(FailedBlock(block, f"{block.path!r} is refused: {problem}"))
            continue
        block = EditBlock(path, block.search, block.replace, block.new_file)
        text, reason = _apply_one(current.get(path), block)
        if reason is not None or text is None:
            outcome.failed.append(FailedBlock(block, reason or "the block did not apply"))
            continue
        current[path] = text
        outcome.files[path] = text
        outcome.applied.append(block)
    return outcome
