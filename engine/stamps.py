"""Modification times rsync's quick check can trust, for files build hooks wrote.

rsync copies with ``--link-dest`` and no ``--checksum``: a file whose size and
mtime equal those of the current release's copy is hard-linked, not sent. The
export gives every file a time derived from its blob id (``git.blob_mtime``),
so that is safe for what came from the repository. Files written by
``pre_deploy``/``post_deploy`` are not: npm unpacks packages with a fixed 1985
mtime, ``SOURCE_DATE_EPOCH`` builds stamp a constant time, so new content of
the same size could look unchanged and the old content would go live.

So after the hooks, every regular file that is not exactly as the export
wrote it gets a time derived from its content (the same rule as the export:
the git blob id), computed once here on the deploy host, never per target.
"Exactly as written" is decided by ``(inode, size, mtime, ctime)``: a hook can
set a file's mtime back, but not its ctime (that needs the system clock).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator

from .git import blob_mtime

# (inode, size, mtime ns, ctime ns) of a regular file.
Fingerprint = tuple[int, int, int, int]
_CHUNK = 1 << 20


def _regular_files(top: str, _prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) of every regular file below ``top``; links are never followed."""
    with os.scandir(top) as scan:
        for item in scan:
            rel = _prefix + item.name
            if item.is_dir(follow_symlinks=False):
                yield from _regular_files(item.path, rel + "/")
            elif item.is_file(follow_symlinks=False):
                yield rel, item


def _fingerprint(info: os.stat_result) -> Fingerprint:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def snapshot(top: str) -> dict[str, Fingerprint]:
    """What each regular file below ``top`` looks like now (taken right after the export)."""
    return {rel: _fingerprint(item.stat(follow_symlinks=False)) for rel, item in _regular_files(top)}


def content_mtime(path: str) -> int:
    """The mtime a file with this content gets: the export's rule, from the
    git blob id of its bytes (same content, same time, whoever wrote it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha1(b"blob %d\0" % size)  # noqa: S324 - git's object id, not security
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return blob_mtime(digest.hexdigest())


def stamp_changed(top: str, exported: dict[str, Fingerprint]) -> int:
    """Give every regular file below ``top`` that the hooks created or touched
    a time derived from its content; return how many were stamped."""
    stamped = 0
    for rel, item in _regular_files(top):
        info = item.stat(follow_symlinks=False)
        if exported.get(rel) == _fingerprint(info) or not stat.S_ISREG(info.st_mode):
            continue
        mtime = content_mtime(item.path)
        os.utime(item.path, (mtime, mtime), follow_symlinks=False)
        stamped += 1
    return stamped
