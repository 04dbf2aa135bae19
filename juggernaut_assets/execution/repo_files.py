"""Reading a repository's files at a branch through PyGithub, and choosing which to show a model.

Files are read with the contents API (`GET /repos/{o}/{r}/contents/{path}?ref={base}`), each at
most once. When a task names no files, `relevant_files` ranks the paths of the base's tree
(`GET /repos/{o}/{r}/git/trees/{sha}?recursive=1`) by the words of the instruction and keeps
the best few within the caps below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import requests
from github import Github, GithubException
from github.Repository import Repository

from juggernaut_assets.execution.github_pr import github_call, translate

MAX_SEARCH_FILES = 8
"""Files a tree search shows the model at most."""
MAX_SEARCH_BYTES = 100_000
"""Bytes (all files together) a tree search shows the model at most."""
MAX_SEARCH_FILE_BYTES = 50_000
"""A file larger than this is never picked by the search (it can still be named in `paths`)."""
MAX_LISTED_PATHS = 300
"""Paths of the tree listed in the prompt (names only), so the model knows what exists."""

SKIPPED_DIRS = frozenset(
    {
        ".git",
        "node_modules",
        "vendor",
        "third_party",
        "dist",
        "build",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
    }
)
SKIPPED_FILES = frozenset(
    {
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "uv.lock",
        "cargo.lock",
        "gemfile.lock",
        "composer.lock",
    }
)
BINARY_NAME = re.compile(
    r"\.(png|jpe?g|gif|ico|webp|bmp|pdf|zip|gz|tgz|bz2|xz|tar|whl|jar|so|dylib|dll|exe|bin"
    r"|woff2?|ttf|otf|eot|mp[34]|mov|avi|wasm|pyc|db|sqlite|parquet|pickle|pkl|npy)$|\.min\.js$"
)
"""Names of files never shown (binary or generated); a file that is not UTF-8 is skipped too."""
STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "from",
        "by",
        "at",
        "as",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "these",
        "those",
        "make",
        "add",
        "use",
        "using",
        "change",
        "update",
        "fix",
        "new",
        "file",
        "files",
        "code",
        "please",
        "should",
        "would",
        "could",
        "into",
        "when",
        "then",
        "than",
        "also",
        "more",
        "less",
        "some",
        "any",
        "all",
        "each",
        "every",
        "not",
        "but",
        "can",
        "will",
        "just",
        "only",
        "its",
        "our",
        "your",
        "their",
        "there",
        "here",
        "what",
        "which",
        "who",
        "how",
        "why",
        "about",
        "after",
        "before",
        "like",
        "need",
        "needs",
    ]
)


class UnreadableFile(Exception):
    """The path exists but cannot be shown as text (a directory, binary, too large)."""


@dataclass(frozen=True)
class TreeFile:
    path: str
    size: int


@dataclass
class RepoFiles:
    """The files of `repo_name` at branch `base`, read through a PyGithub client."""

    client: Github
    repo_name: str
    base: str
    _repo: Repository | None = field(default=None, init=False)
    _texts: dict[str, str | None] = field(default_factory=dict, init=False)

    def repo(self) -> Repository:
        if self._repo is None:
            with github_call(
                f"reading repository {self.repo_name}",
                f"repository {self.repo_name} does not exist, or the token cannot see it",
            ):
                self._repo = self.client.get_repo(self.repo_name)
        return self._repo

    def read(self, path: str) -> str | None:
        """The file's text at `base`, or None when there is no such file.

        Raises `UnreadableFile` for a directory, a file that is not UTF-8 text, or one too large
        for the contents API; GitHub errors become task outcomes (`github_pr.translate`).
        """
        if path in self._texts:
            return self._texts[path]
        try:
            found = self.repo().get_contents(path, ref=self.base)
        except GithubException as exc:
            if exc.status == 404:
                self._texts[path] = None
                return None
            raise translate(exc, f"reading {path} at {self.base}") from None
        except requests.RequestException as exc:
            raise translate(exc, f"reading {path} at {self.base}") from None
        if isinstance(found, list):
            raise UnreadableFile(f"{path} is a directory")
        if found.encoding != "base64":
            raise UnreadableFile(f"{path} is too large to read through the contents API")
        try:
            text = found.decoded_content.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableFile(f"{path} is not UTF-8 text") from None
        self._texts[path] = text
        return text

    def tree(self) -> tuple[list[TreeFile], bool]:
        """(files of the base's tree, whether GitHub truncated the listing)."""
        repo = self.repo()
        with github_call(
            f"listing the files of {self.repo_name} at {self.base}",
            f"base branch '{self.base}' does not exist in {self.repo_name}",
        ):
            tree = repo.get_git_tree(self.base, recursive=True)
            entries = [
                TreeFile(e.path, int(e.size or 0)) for e in tree.tree if e.type == "blob" and e.path
            ]
            truncated = bool(tree.truncated)
        return entries, truncated


def searchable(entry: TreeFile) -> bool:
    """Could this file be worth showing? (No vendored, generated, lock or binary files.)"""
    parts = entry.path.split("/")
    name = parts[-1].lower()
    if any(p in SKIPPED_DIRS for p in parts[:-1]) or name in SKIPPED_FILES:
        return False
    if BINARY_NAME.search(name):
        return False
    return entry.size <= MAX_SEARCH_FILE_BYTES


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def keywords(instruction: str) -> set[str]:
    """The instruction's words worth matching against paths (3+ characters, no stopwords)."""
    return {w for w in _words(instruction) if len(w) >= 3 and w not in STOPWORDS}


def mentioned_paths(instruction: str) -> set[str]:
    """Path-like tokens of the instruction (`src/app.py`, `README.md`), as written."""
    tokens = re.findall(r"[\w./-]+", instruction)
    return {t.strip("./") for t in tokens if ("/" in t or "." in t.strip(".")) and t.strip("./")}


def relevance(path: str, words: set[str], mentioned: set[str]) -> int:
    """How strongly the instruction points at `path` (0: not at all)."""
    if path in mentioned:
        return 1000
    name = path.rsplit("/", 1)[-1]
    score = 300 if name in mentioned else 0
    stem_words = set(_words(name.rsplit(".", 1)[0] if "." in name[1:] else name))
    dir_words = set(_words(path.rsplit("/", 1)[0])) if "/" in path else set()
    for word in words:
        if word in stem_words:
            score += 20
        elif word in dir_words:
            score += 8
        elif any(
            len(part) >= 4 and (part in word or word in part) for part in stem_words | dir_words
        ):
            score += 3
    return score


def relevant_files(instruction: str, entries: Iterable[TreeFile]) -> list[TreeFile]:
    """The files to show for `instruction`: best first, within the search caps."""
    words, mentioned = keywords(instruction), mentioned_paths(instruction)
    scored = [(relevance(e.path, words, mentioned), e) for e in entries if searchable(e)]
    ranked = sorted(
        ((s, e) for s, e in scored if s > 0), key=lambda se: (-se[0], len(se[1].path), se[1].path)
    )
    picked: list[TreeFile] = []
    total = 0
    for _, entry in ranked:
        if len(picked) >= MAX_SEARCH_FILES:
            break
        if total + entry.size > MAX_SEARCH_BYTES:
            continue
        picked.append(entry)
        total += entry.size
    return picked


def listing(entries: Sequence[TreeFile], truncated: bool) -> list[str]:
    """The paths named in the prompt's file list (searchable ones first, capped)."""
    paths = sorted(e.path for e in entries if searchable(e))
    lines = paths[:MAX_LISTED_PATHS]
    left = len(paths) - len(lines)
    if left > 0:
        lines.append(f"… and {left} more file(s) not listed")
    elif truncated:
        lines.append("… (GitHub truncated the listing: more files exist)")
    return lines
