"""File diffs for a reviewer: what a ticket changes, file by file, capped.

Pure functions over git's output (``git diff --numstat -z`` and a unified
patch); engine/git.py runs git. Caps keep a page readable and bounded: a
generated file or a vendored library shows as "too large", a binary file by
name only.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FILE_LINES = 400  # changed lines of one file shown in full
MAX_FILES_SHOWN = 60  # files whose content diff is shown; the others are named
MAX_PATCH_BYTES = 512 * 1024  # all shown patches together


@dataclass(frozen=True)
class FileDiff:
    path: str
    added: int | None  # None: binary
    deleted: int | None
    patch: str = ""  # unified diff body (from the first @@), empty when not shown
    why_not_shown: str = ""  # "binary", "too large", ...

    @property
    def binary(self) -> bool:
        return self.added is None

    @property
    def lines(self) -> list[tuple[str, str]]:
        """The patch as (kind, text): kind is add, del, hunk or ctx."""
        kinds = {"+": "add", "-": "del", "@": "hunk"}
        return [(kinds.get(line[:1], "ctx"), line) for line in self.patch.splitlines()]


def parse_numstat(out: str) -> list[FileDiff]:
    """``git diff --numstat -z --no-renames``: "added\\tdeleted\\tpath\\0" per
    file; binary files have "-" counts."""
    files = []
    for record in out.split("\0"):
        if not record:
            continue
        added, deleted, path = record.split("\t", 2)
        binary = added == "-"
        files.append(FileDiff(path, None if binary else int(added), None if binary else int(deleted),
                              why_not_shown="binary" if binary else ""))
    return files


def to_show(files: list[FileDiff]) -> list[FileDiff]:
    """The text files whose patch fits the caps, in order."""
    shown = []
    for diff in files:
        if diff.binary or diff.added + diff.deleted > MAX_FILE_LINES:
            continue
        if len(shown) == MAX_FILES_SHOWN:
            break
        shown.append(diff)
    return shown


def split_patch(patch: str) -> list[str]:
    """A multi-file unified diff into one body per file, in order: the hunks
    from the first "@@" (headers name paths quoted; the caller knows them)."""
    bodies: list[str] = []
    current: list[str] | None = None
    for line in patch.splitlines(keepends=True):
        if line.startswith("diff --git "):
            current = []
            bodies.append(current)
        elif current is not None and (current or line.startswith("@@")):
            current.append(line)
    return ["".join(body) for body in bodies]


def attach(files: list[FileDiff], shown: list[FileDiff], bodies: list[str]) -> list[FileDiff]:
    """Every file, with the patch of those shown (while the byte cap allows)
    and the reason for the others."""
    if len(bodies) != len(shown):  # git and we disagree on the files: show none rather than mix them up
        bodies, shown = [], []
    patch_of = {}
    budget = MAX_PATCH_BYTES
    for diff, body in zip(shown, bodies, strict=True):
        if len(body) <= budget:
            patch_of[diff.path] = body
            budget -= len(body)
    result = []
    for diff in files:
        if diff.path in patch_of:
            result.append(FileDiff(diff.path, diff.added, diff.deleted, patch=patch_of[diff.path]))
        elif diff.binary:
            result.append(diff)
        else:
            result.append(FileDiff(diff.path, diff.added, diff.deleted, why_not_shown="too large"))
    return result
