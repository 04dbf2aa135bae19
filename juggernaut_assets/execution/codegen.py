"""Generated code changes: from a task's `instruction` to exact file writes, through a model.

The files the change needs are read from the repository at `base` (the payload's `paths`, else
a bounded search of the tree, see `repo_files`), shown to the model with their paths, and the
model answers with SEARCH/REPLACE blocks (NEW FILE blocks for new files, see
`lib/edit_blocks`). Blocks are applied exactly; a block that does not apply, or an answer that
holds no usable blocks, is sent back with the reason, for at most `MAX_ROUNDS` model calls in
all; then the task fails naming the blocks that did not apply.

Every model call is a `tool_calls` row (`llm`: model, round, file paths; tokens, cost, finish
reason) and its prompt and answer are files under the task's artifacts, returned as
`llm_exchange` artifacts; at the daily budget, the task is blocked (`execution/llm_calls`).
What this produces is file writes, nothing more: the code handler commits them and opens a
pull request, and the task is done only when that is merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from juggernaut_assets.db.enums import PrState
from juggernaut_assets.db.models import PrTracking
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.github_pr import FileWrite
from juggernaut_assets.execution.llm_calls import LlmCalls, require_llm
from juggernaut_assets.execution.llm_calls import spent_today as spent_today
from juggernaut_assets.execution.outcome import Artifact, TaskRejected
from juggernaut_assets.execution.repo_files import (
    RepoFiles,
    UnreadableFile,
    listing,
    relevant_files,
)
from juggernaut_assets.lib.edit_blocks import (
    Applied,
    EditBlock,
    FailedBlock,
    MalformedAnswer,
    apply_blocks,
    normalise_path,
    parse_blocks,
    path_problem,
)
from juggernaut_assets.tasks.payloads import CodePayload

MAX_ROUNDS = 3
"""Model calls that produce an answer, per attempt (the first and up to two reflections)."""
MAX_NAMED_FILES = 20
MAX_NAMED_BYTES = 200_000
"""Caps on the files a payload names in `paths` (all shown in full, or the task fails)."""
MAX_REFLECTED_FILE_BYTES = 50_000
"""A file named by a failed block is shown again in the reflection when it is at most this big."""
MAX_NOTES_CHARS = 1500

SYSTEM_PROMPT = """\
You change files in a git repository by writing edit blocks. Your answer is applied \
mechanically and exactly, then proposed as a pull request for review.

To change an existing file, write its path alone on a line, then a SEARCH/REPLACE block:

path/to/file.py
<<<<<<< SEARCH
lines copied exactly from the current file
=======
the lines that replace them
>>>>>>> REPLACE

To create a file that does not exist yet, write its path, then its whole content:

path/to/new_file.md
<<<<<<< NEW FILE
the whole content of the new file
>>>>>>> NEW FILE

Rules:
- The SEARCH lines must match the file exactly: every character, space, indentation and \
comment, as whole consecutive lines. They must match exactly one place: include enough \
surrounding lines to make them unique, and no more than needed.
- Use several small blocks for changes in several places; blocks apply in order.
- Only edit files you were shown; create new files only with NEW FILE blocks.
- Paths are relative to the repository root, with '/', never absolute, never with '..', never \
inside .git/.
- Begin with one or two sentences saying what you change and why; put no other text between \
or after the blocks. Write code in blocks as plain text, never inside JSON.
"""


@dataclass(frozen=True)
class GeneratedChange:
    """What the model's edits came to: the writes to commit, and the record of each call."""

    writes: list[FileWrite]
    artifacts: list[Artifact]
    model: str
    rounds: int
    notes: str
    """The model's own words about the change (its text outside the blocks), trimmed."""


def has_open_pull_request(ctx: TaskContext, repo: str) -> bool:
    """Did an earlier attempt of this task open a pull request in `repo` that is still open?

    Then a retry re-finds that pull request instead of asking the model again (the change it
    proposes stays the one under review).
    """
    with ctx.engine.connect() as conn:
        row = conn.execute(
            sa.select(PrTracking.id).where(
                PrTracking.task_id == ctx.task_id,
                PrTracking.repo == repo,
                PrTracking.current_state == PrState.OPEN.value,
            )
        ).first()
    return row is not None


def pr_title(payload: CodePayload) -> str:
    if payload.title:
        return payload.title
    first = (payload.instruction or "").strip().splitlines()[0].strip()
    return first if len(first) <= 72 else first[:71].rstrip() + "…"


def pr_body(task_id: str, instruction: str, change: GeneratedChange | None) -> str:
    """Readable markdown: who opened it, the instruction, and the model that wrote it."""
    quoted = "\n".join(f"> {line}" if line else ">" for line in instruction.strip().splitlines())
    lines = [f"Opened by Juggernaut for task `{task_id}`.", "", "### Instruction", "", quoted, ""]
    lines += ["### Generated change", ""]
    if change is None:
        lines.append("Written by a model on an earlier attempt of this task.")
    else:
        files = ", ".join(f"`{w.path}`" for w in change.writes)
        rounds = f"{change.rounds} round{'s' if change.rounds != 1 else ''}"
        lines += [f"- Model: `{change.model}` ({rounds})", f"- Files: {files}"]
        if change.notes:
            lines += ["", "The model's summary:", ""]
            lines += [f"> {line}" if line else ">" for line in change.notes.splitlines()]
    lines += [
        "",
        "The edits were applied exactly as the model wrote them. Review them as you would any "
        "change: the task is done only when this pull request is merged.",
    ]
    return "\n".join(lines)


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _show(path: str, text: str) -> str:
    fence = _fence(text)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{path}\n{fence}\n{body}{fence}\n"


def _user_prompt(
    payload: CodePayload, shown: dict[str, str | None], listed: list[str] | None
) -> str:
    parts = [
        f"Repository: {payload.repo} (branch {payload.base})",
        "",
        "Instruction:",
        (payload.instruction or "").strip(),
        "",
    ]
    existing = {p: t for p, t in shown.items() if t is not None}
    missing = [p for p, t in shown.items() if t is None]
    if existing:
        parts += ["Current content of the files you may change:", ""]
        parts += [_show(p, t) for p, t in existing.items()]
    else:
        parts += ["No existing file was found to match the instruction.", ""]
    if missing:
        parts += ["These files do not exist yet (create them with NEW FILE blocks if needed):"]
        parts += [f"- {p}" for p in missing] + [""]
    if listed:
        parts += ["Other files in the repository (names only):"]
        parts += [*listed, ""]
    parts.append("Reply with the edit blocks that carry out the instruction.")
    return "\n".join(parts)


def _named_files(files: RepoFiles, paths: list[str]) -> dict[str, str | None]:
    if len(paths) > MAX_NAMED_FILES:
        raise TaskRejected(
            f"the payload names {len(paths)} files in 'paths', over the limit of "
            f"{MAX_NAMED_FILES}: name only the files the change needs"
        )
    shown: dict[str, str | None] = {}
    for raw in paths:
        path = normalise_path(raw)
        problem = path_problem(path)
        if problem:
            raise TaskRejected(f"payload 'paths' entry {raw!r} is refused: {problem}")
        try:
            shown[path] = files.read(path)
        except UnreadableFile as exc:
            raise TaskRejected(f"payload 'paths': {exc}") from None
    size = sum(len(t.encode()) for t in shown.values() if t)
    if size > MAX_NAMED_BYTES:
        raise TaskRejected(
            f"the files named in 'paths' hold {size} bytes, over the {MAX_NAMED_BYTES}-byte "
            "limit of one prompt: name fewer or smaller files"
        )
    return shown


def _searched_files(files: RepoFiles, instruction: str) -> tuple[dict[str, str | None], list[str]]:
    entries, truncated = files.tree()
    shown: dict[str, str | None] = {}
    for entry in relevant_files(instruction, entries):
        try:
            text = files.read(entry.path)
        except UnreadableFile:
            continue
        if text is not None:
            shown[entry.path] = text
    listed = [p for p in listing(entries, truncated) if p not in shown]
    return shown, listed


def _notes(answer: str) -> str:
    """The answer's text before its first block (without that block's path and fence lines)."""
    lines = answer.split("\n")
    first = next(
        (i for i, line in enumerate(lines) if re.match(r"^<{5,9} ?(SEARCH|NEW FILE)\s*$", line)),
        None,
    )
    if first is None:
        return ""
    head = lines[:first]
    if head and head[-1].lstrip().startswith(("```", "~~~")):
        head.pop()
    if head and head[-1].strip():
        head.pop()
    text = "\n".join(head).strip()
    return text if len(text) <= MAX_NOTES_CHARS else text[: MAX_NOTES_CHARS - 1] + "…"


def _first_line(text: str) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= 60 else line[:59] + "…"


def _describe(failed: FailedBlock) -> str:
    block = failed.block
    what = "NEW FILE" if block.creates else f'SEARCH "{_first_line(block.search)}"'
    return f"{block.path} ({what}): {failed.reason}"


def _reflection_failed(
    applied: Applied, current: dict[str, str | None], shown: dict[str, str | None]
) -> str:
    failed = applied.failed
    parts = [f"{len(failed)} of your blocks did not apply and changed nothing:", ""]
    for f in failed:
        parts += [f"## {f.reason}", "", f.block.render()]
    if applied.applied:
        parts.append(
            f"The other {len(applied.applied)} block(s) applied: do not send them again.\n"
        )
    named = dict.fromkeys(f.block.path for f in failed)
    for path in named:
        text = current.get(path)
        if text is None or shown.get(path) == text:
            continue
        if len(text.encode()) > MAX_REFLECTED_FILE_BYTES:
            parts.append(f"({path} is too large to show here.)\n")
            continue
        parts += [f"The current content of {path}:", "", _show(path, text)]
    parts.append("Reply with corrected blocks for the failed ones only.")
    return "\n".join(parts)


def _reflection_malformed(reason: str) -> str:
    return (
        f"Your answer could not be used: {reason}.\n\n"
        "Reply again with the complete edit blocks, each after a line holding the file's path, "
        "in the SEARCH/REPLACE (or NEW FILE) format described at the start."
    )


def _load_named(
    files: RepoFiles,
    blocks: list[EditBlock],
    base: dict[str, str | None],
    current: dict[str, str | None],
) -> dict[str, str]:
    """Read the files blocks name that were not read yet (into `base` and `current`);
    returns path → why it cannot be edited, for those that cannot."""
    unusable: dict[str, str] = {}
    for block in blocks:
        path = normalise_path(block.path)
        if path in current or path in unusable or path_problem(path):
            continue
        try:
            base[path] = current[path] = files.read(path)
        except UnreadableFile as exc:
            unusable[path] = f"{exc}: it cannot be edited here"
    return unusable


def _apply(
    blocks: list[EditBlock], current: dict[str, str | None], unusable: dict[str, str]
) -> Applied:
    usable = [b for b in blocks if normalise_path(b.path) not in unusable]
    applied = apply_blocks(usable, current)
    applied.failed += [
        FailedBlock(b, unusable[normalise_path(b.path)])
        for b in blocks
        if normalise_path(b.path) in unusable
    ]
    return applied


def generate_change(ctx: TaskContext, payload: CodePayload) -> GeneratedChange:
    """Ask the model for edits carrying out `payload.instruction`, and apply them exactly.

    Raises `TaskBlocked` without a key or over the daily budget, `RetriableError` when the
    model API is unavailable for now, and `TaskRejected` when after `MAX_ROUNDS` calls the
    edits still do not apply (naming the blocks that did not) or change nothing.
    """
    llm = require_llm(ctx)
    instruction = (payload.instruction or "").strip()
    files = RepoFiles(ctx.github.client(), payload.repo, payload.base)
    if payload.paths:
        shown, listed = _named_files(files, payload.paths), None
    else:
        shown, listed = _searched_files(files, instruction)
    base: dict[str, str | None] = dict(shown)
    current: dict[str, str | None] = dict(shown)
    exchange = LlmCalls(ctx, llm, {"paths": list(shown)})
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _user_prompt(payload, shown, listed)},
    ]
    artifacts: list[Artifact] = []
    notes: list[str] = []
    problem = ""
    for round_no in range(1, MAX_ROUNDS + 1):
        result, artifact = exchange.ask(messages, round_no)
        artifacts.append(artifact)
        notes.append(_notes(result.content))
        messages.append({"role": "assistant", "content": result.content})
        try:
            blocks = parse_blocks(result.content)
        except MalformedAnswer as exc:
            cut = " (it was cut off at the token limit)" if result.finish_reason == "length" else ""
            problem = f"the answer could not be used: {exc}{cut}"
            messages.append({"role": "user", "content": _reflection_malformed(f"{exc}{cut}")})
            continue
        unusable = _load_named(files, blocks, base, current)
        applied = _apply(blocks, current, unusable)
        current.update(applied.files)
        if applied.failed:
            problem = "blocks that did not apply: " + "; ".join(
                _describe(f) for f in applied.failed
            )
            messages.append(
                {"role": "user", "content": _reflection_failed(applied, current, shown)}
            )
            continue
        changed = {p: t for p, t in current.items() if t is not None and t != base.get(p)}
        if not changed:
            raise TaskRejected(
                f"the model's edits ({llm.model}) change nothing in {payload.repo}: "
                "the instruction may already be carried out"
            )
        return GeneratedChange(
            writes=[FileWrite(p, t) for p, t in sorted(changed.items())],
            artifacts=artifacts,
            model=result.model,
            rounds=round_no,
            notes=next((n for n in notes if n), ""),
        )
    message = f"the model ({llm.model}) gave no applicable edits in {MAX_ROUNDS} rounds; {problem}"
    raise TaskRejected(message if len(message) <= 4000 else message[:3999] + "…")
