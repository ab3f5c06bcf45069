"""Single remote operations on a target: read, create, switch and prune releases.

Every command is an argv list sent through :meth:`Connection.run`, which quotes
each word; the only script text (the switch) is a constant that takes its paths
as positional parameters.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .local import OnLine
from .plan import RELEASE_NAME_RE, Stream
from .ssh import Connection

# ln + mv -T: rename(2) replaces the webroot link in one step, so it never
# disappears, even for a moment. On failure the temporary link is removed.
SWITCH_SCRIPT = 'ln -sfn -- "$1" "$2" && mv -fT -- "$2" "$3" || { rm -f -- "$2"; exit 1; }'
# mkdir -p the library, then mkdir (never -p) the release: it must be new.
MAKE_RELEASE_SCRIPT = 'mkdir -p -- "$1" || exit 3; mkdir -- "$2"'
_NO_LIBRARY = 3
# The marker of a fully prepared release (copied, pre_release passed): its
# commit, written last, so a retry can tell a complete copy from a cut one.
# It lives until the run succeeds everywhere (the cleanup step removes it).
MARK_SCRIPT = 'printf "%s\\n" "$1" > "$2"'
PREPARED_SCRIPT = 'test -d "$1" && cat -- "$2"'
# Only a symlink is removed: Walle never deletes a real webroot directory.
UNLINK_SCRIPT = 'if [ -L "$1" ]; then rm -f -- "$1"; fi'
QUICK_TIMEOUT = 60  # for small bookkeeping commands (readlink, mkdir, test)


class HostOpError(RuntimeError):
    """A remote step failed; the message says what to do about it."""


@dataclass(frozen=True)
class Current:
    """What a webroot points at before the run."""

    path: str = ""  # absolute link target, "" if the webroot does not exist
    release: str = ""  # release name if the target is a release in our library


def capture(conn: Connection, argv: list[str], on_line: OnLine, timeout: int = QUICK_TIMEOUT) -> tuple[int, list[str]]:
    """Run ``argv``; return (status, stdout lines). stderr goes to the log."""
    out: list[str] = []

    def collect(stream: Stream, text: str) -> None:
        if stream == Stream.STDOUT:
            out.append(text)
        else:
            on_line(stream, text)

    return conn.run(argv, timeout=timeout, on_line=collect), out


def free_kib(conn: Connection, path: str, on_line: OnLine) -> int | None:
    """Free space (KiB) for the run user on the filesystem holding ``path``, or None if unknown."""
    status, out = capture(conn, ["df", "-Pk", "--", path], on_line)
    try:
        return int(out[-1].split()[3]) if status == 0 else None
    except (IndexError, ValueError):
        return None


def read_current(conn: Connection, webroot: str, library: str, on_line: OnLine) -> Current:
    """Where the webroot link points; refuse a webroot that is a real directory or file."""
    status, out = capture(conn, ["readlink", "--", webroot], on_line)
    if status == 0 and out:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(webroot), out[0]))
        name = posixpath.basename(path)
        in_library = posixpath.dirname(path) == library and RELEASE_NAME_RE.fullmatch(name)
        return Current(path=path, release=name if in_library else "")
    status, _ = capture(conn, ["test", "-e", webroot], on_line)
    if status == 0:
        raise HostOpError(
            f"webroot {webroot} on {conn.target.name} is a real directory or file, not a symlink; "
            f"Walle never deletes it: move it aside (mv {webroot} {webroot}.old) and deploy again"
        )
    parent = posixpath.dirname(webroot)
    status, _ = capture(conn, ["test", "-d", parent], on_line)
    if status != 0:
        raise HostOpError(f"the webroot's directory {parent} does not exist on {conn.target.name}; create it first")
    return Current()


def make_release_dir(conn: Connection, library: str, name: str, on_line: OnLine) -> str:
    """Create ``<library>/<name>``; it must not exist yet (so we only ever remove our own).

    One remote command (one round trip), the paths as positional parameters."""
    path = posixpath.join(library, name)
    status, _ = capture(conn, ["sh", "-c", MAKE_RELEASE_SCRIPT, "walle-mkdir", library, path], on_line)
    if status == _NO_LIBRARY:
        raise HostOpError(f"cannot create release library {library} on {conn.target.name}; check its owner")
    if status != 0:
        raise HostOpError(f"cannot create {path} on {conn.target.name} (does it exist already?)")
    return path


def marker_path(library: str, name: str) -> str:
    """Hidden beside the release dir (never served, never listed as a release)."""
    return posixpath.join(library, f".{name}.walle-prepared")


def mark_prepared(conn: Connection, library: str, name: str, commit: str, on_line: OnLine) -> None:
    """Record that the release dir holds all of ``commit`` and passed pre_release."""
    status, _ = capture(conn, ["sh", "-c", MARK_SCRIPT, "walle-mark", commit, marker_path(library, name)], on_line)
    if status != 0:
        raise HostOpError(f"cannot write the prepared marker of {name} on {conn.target.name}")


def prepared_commit(conn: Connection, library: str, name: str, on_line: OnLine) -> str:
    """The commit a complete earlier copy of release ``name`` holds, or ""."""
    argv = ["sh", "-c", PREPARED_SCRIPT, "walle-prepared", posixpath.join(library, name), marker_path(library, name)]
    status, out = capture(conn, argv, on_line)
    return out[0].strip() if status == 0 and out else ""


def remove_marker(conn: Connection, library: str, name: str, on_line: OnLine) -> None:
    """The release went live everywhere: no retry will ask for its marker."""
    capture(conn, ["rm", "-f", "--", marker_path(library, name)], on_line)


def unlink_webroot(conn: Connection, webroot: str, on_line: OnLine) -> None:
    """Remove the webroot link (it did not exist before the run)."""
    status, _ = capture(conn, ["sh", "-c", UNLINK_SCRIPT, "walle-unlink", webroot], on_line)
    if status != 0:
        raise HostOpError(f"removing the webroot link {webroot} on {conn.target.name} failed (exit {status})")


def release_exists(conn: Connection, library: str, name: str, on_line: OnLine) -> bool:
    """True if the release directory is present on the host."""
    status, _ = capture(conn, ["test", "-d", posixpath.join(library, name)], on_line)
    return status == 0


def temp_link_path(webroot: str, ticket_id: int) -> str:
    """The temporary link next to the webroot that ``mv -T`` renames over it."""
    return posixpath.join(posixpath.dirname(webroot), f".{posixpath.basename(webroot)}.walle-tmp-{ticket_id}")


def switch_argv(release_path: str, webroot: str, ticket_id: int) -> list[str]:
    """One remote command that atomically points ``webroot`` at ``release_path``."""
    return ["sh", "-c", SWITCH_SCRIPT, "walle-switch", release_path, temp_link_path(webroot, ticket_id), webroot]


def switch(conn: Connection, release_path: str, webroot: str, ticket_id: int, on_line: OnLine) -> None:
    """Atomically switch the webroot; raise HostOpError if it did not happen."""
    status, _ = capture(conn, switch_argv(release_path, webroot, ticket_id), on_line)
    if status != 0:
        raise HostOpError(
            f"switching {webroot} on {conn.target.name} failed (exit {status}); it still points where it did"
        )


def remove_release(conn: Connection, library: str, name: str, on_line: OnLine, timeout: int) -> bool:
    """``rm -rf -- <library>/<name>`` for a Walle release name only; True on success."""
    if not RELEASE_NAME_RE.fullmatch(name):
        raise ValueError(f"refusing to remove {name!r}: not a Walle release name")
    argv = ["rm", "-rf", "--", posixpath.join(library, name), marker_path(library, name)]
    status, _ = capture(conn, argv, on_line, timeout)
    return status == 0


def list_releases(conn: Connection, library: str, on_line: OnLine) -> list[str]:
    """Names of the Walle release directories in ``library`` (foreign entries ignored)."""
    status, out = capture(
        conn, ["find", library, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", "%f\\n"], on_line
    )
    if status != 0:
        raise HostOpError(f"cannot list {library} on {conn.target.name}")
    return [name for name in out if RELEASE_NAME_RE.fullmatch(name)]


def _sort_key(name: str) -> tuple[str, int]:
    # YYYYmmdd-HHMMSS sorts as text; the ticket id needs numeric order.
    stamp, _, ticket = name.rpartition("-")
    return stamp, int(ticket)


def releases_to_remove(names: Iterable[str], keep: int, protect: Collection[str]) -> list[str]:
    """Release names beyond the newest ``keep``, never a protected one or a foreign name.

    ``keep <= 0`` keeps everything.
    """
    if keep <= 0:
        return []
    ours = sorted({n for n in names if RELEASE_NAME_RE.fullmatch(n)}, key=_sort_key, reverse=True)
    return [name for name in ours[keep:] if name not in protect]


def orphan_releases(names: Iterable[str], known: Collection[str] | None, protect: Collection[str]) -> list[str]:
    """Walle-named release dirs that are neither known releases nor protected:
    what an interrupted run left behind. ``known`` None means "cannot tell"."""
    if known is None:
        return []
    return sorted(n for n in names if RELEASE_NAME_RE.fullmatch(n) and n not in known and n not in protect)
