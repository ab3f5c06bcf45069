"""Copy a build directory to one target's new release directory with rsync over ssh."""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Sequence

from . import local
from .local import OnLine
from .plan import Secret, Stream, Target
from .ssh import KeyFiles, key_files, known_hosts_line, ssh_argv

# What rsync prints when the receiving disk is full (ENOSPC).
NO_SPACE_MARKERS = ("No space left on device", "ENOSPC")
# An rsync that has moved no data for this long is treated as dead (a host that
# vanished without closing the TCP connection), well before the overall timeout.
IO_TIMEOUT = 60
# With --compress, rsync (3.2 or newer on both ends) picks the first algorithm
# in this list that the other end also has: zstd, else zlib. An older rsync on
# either end knows only zlib and uses it without asking.
COMPRESS_LIST = "zstd zlib"


def build_argv(
    *,
    source_dir: str,
    target: Target,
    user: str,
    release_path: str,
    files: KeyFiles,
    exclude_file: str,
    link_dest: str = "",
    compress: bool = True,
    connect_timeout: int = 10,
) -> list[str]:
    """rsync argv: archive mode, pinned-key ssh, excludes from a file, hard links to
    the current release for unchanged files, compressed unless ``compress`` is off.

    No ``--checksum``: rsync's quick check (size + mtime) decides what is linked
    and what is sent, so neither end reads a whole release at every deploy. That
    is safe because every file's mtime is derived from its content: the export
    stamps each file from its blob id and, after the build hooks, the pipeline
    stamps whatever they wrote or touched from its content (``engine.stamps``).
    Two commits made in the same second that change a file but not its size
    therefore still give it different mtimes.

    ``--secluded-args`` (``-s``) sends paths over the protocol instead of through
    the remote shell, so a path is never re-split or interpreted there.
    """
    ssh = ssh_argv(files, port=target.port, connect_timeout=connect_timeout)
    argv = [
        # --no-owner/--no-group: files belong to the run user on the target, never
        # to whoever built them (as root, hooks build as "nobody").
        "rsync", "-a", "--no-owner", "--no-group", "--delete", "-s", f"--timeout={IO_TIMEOUT}",
        "--exclude=.git",
        f"--exclude-from={exclude_file}",
    ]  # fmt: skip
    if compress:
        argv.append("--compress")
    if link_dest:
        argv.append(f"--link-dest={link_dest}")
    host = f"[{target.address}]" if ":" in target.address else target.address  # IPv6 literal
    argv += ["-e", shlex.join(ssh), "--", source_dir.rstrip("/") + "/", f"{user}@{host}:{release_path}/"]
    return argv


def write_excludes(directory: str, excludes: Sequence[str]) -> str:
    """Write the project's exclude patterns, one per line, to a file for --exclude-from.

    Patterns stay data in a file: rsync reads them as patterns, never as options.
    """
    path = os.path.join(directory, "excludes")
    with open(path, "w", encoding="utf-8") as handle:
        for line in excludes:
            if line.strip():
                handle.write(line.strip() + "\n")
    return path


def transfer(
    *,
    source_dir: str,
    target: Target,
    user: str,
    key: Secret,
    release_path: str,
    excludes: Sequence[str],
    link_dest: str,
    timeout: int,
    compress: bool = True,
    on_line: OnLine,
    connect_timeout: int = 10,
    cancel: threading.Event | None = None,
) -> int:
    """Run rsync to ``target``; stream its output; return its exit status.

    ``cancel`` stops a running transfer (another host failed, so it is wasted).
    A full disk on the target is said in plain words as the last line.
    """
    kh_line = known_hosts_line(target.address, target.port, target.host_key)
    full = threading.Event()

    def watch(stream: Stream, text: str) -> None:
        if any(marker in text for marker in NO_SPACE_MARKERS):
            full.set()
        on_line(stream, text)

    with key_files(key, [kh_line]) as files:
        argv = build_argv(
            source_dir=source_dir,
            target=target,
            user=user,
            release_path=release_path,
            files=files,
            exclude_file=write_excludes(files.directory, excludes),
            link_dest=link_dest,
            compress=compress,
            connect_timeout=connect_timeout,
        )
        on_line(Stream.INFO, "$ " + shlex.join(argv))
        env = local.tool_env({"RSYNC_COMPRESS_LIST": COMPRESS_LIST})
        status = local.run(argv, env=env, timeout=timeout, on_line=watch, cancel=cancel)
    if status != 0 and full.is_set():
        raise NoSpaceLeft(f"no space left on {target.name} (rsync exit status {status}); free disk space there")
    return status


class NoSpaceLeft(OSError):
    """The target's disk filled up during the copy."""
