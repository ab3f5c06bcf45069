"""SSH to target hosts: pinned host keys only, argv-quoted commands, streamed output.

One :class:`Connection` (one paramiko ``SSHClient``) per host serves the whole run.
The only host key accepted is the one pinned on the target; an unknown or changed
key is refused with :class:`HostKeyError` before anything runs (no TOFU here: the
config check is where keys get pinned, by a human decision).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import select
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from . import runtime
from .local import TIMEOUT_STATUS, LineSplitter, OnLine
from .plan import Secret, Stream, Target

# "type base64 [comment]" as in authorized_keys / known_hosts (without the host part).
_KEY_LINE_RE = re.compile(r"^(?P<type>[a-z0-9@.-]+) (?P<body>[A-Za-z0-9+/]+={0,2})(?: .*)?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The remote `timeout --kill-after=5` should fire first; this local margin only
# matters when the remote side is stuck or has no timeout(1).
_LOCAL_TIMEOUT_MARGIN = 10
KEY_DIR_PREFIX = "walle-ssh-"


class SSHError(Exception):
    """Connecting, logging in or running a command over SSH failed."""


class HostKeyError(SSHError):
    """The host key is not pinned, or the host presented a different one."""


class LoginError(SSHError):
    """The host answered with the right key but refused our user or key."""


def parse_key_line(key_line: str) -> tuple[str, str]:
    """Split an OpenSSH public key line into (type, base64 body); ValueError if malformed."""
    match = _KEY_LINE_RE.fullmatch(key_line.strip())
    if not match:
        raise ValueError("not an OpenSSH public key line (expected 'ssh-ed25519 AAAA...')")
    try:
        base64.b64decode(match["body"], validate=True)
    except binascii.Error as exc:
        raise ValueError("the public key's base64 part is damaged") from exc
    return match["type"], match["body"]


def fingerprint(key_line: str) -> str:
    """OpenSSH-style fingerprint (``SHA256:...``, unpadded base64) of a key line."""
    _, body = parse_key_line(key_line)
    digest = hashlib.sha256(base64.b64decode(body)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    """The name OpenSSH and paramiko file a host key under."""
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts_line(address: str, port: int, key_line: str) -> str:
    """A known_hosts line trusting exactly ``key_line`` for ``address:port``."""
    key_type, body = parse_key_line(key_line)
    return f"{known_hosts_name(address, port)} {key_type} {body}"


def load_private_key(key: Secret) -> paramiko.PKey:
    """Parse an OpenSSH/PEM private key (ed25519, ECDSA or RSA) without echoing it."""
    text = key.value
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    # Never include the key text (or paramiko's message about it) here.
    raise SSHError("the project's SSH private key could not be read (expected an unencrypted OpenSSH key)")


def remote_command(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int | None = None,
) -> str:
    """Build the one shell string sshd runs, quoting every element with shlex.quote.

    Shape: ``cd -- <dir> && env K=<v> ... timeout --kill-after=5 <n> <argv...>``.
    Environment values travel as quoted words, never inside a script's text, so
    hooks see ``$WALLE_TICKET_TITLE`` literally whatever it contains.
    """
    if not argv:
        raise ValueError("empty command")
    words: list[str] = []
    if env:
        for name in env:
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(f"bad environment variable name {name!r}")
        words += ["env", *(f"{name}={value}" for name, value in env.items())]
    if timeout is not None:
        words += ["timeout", "--kill-after=5", str(int(timeout))]
    words += list(argv)
    command = " ".join(shlex.quote(word) for word in words)
    if cwd is not None:
        command = f"cd -- {shlex.quote(cwd)} && {command}"
    return command


def fetch_host_key(address: str, port: int, timeout: float) -> str:
    """Ask a server for its host key and return it as ``"type base64"``.

    Used only by the config check, which shows the fingerprint so a human can
    decide to pin it. Nothing is authenticated or executed.
    """
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise SSHError(f"cannot reach {known_hosts_name(address, port)}: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SSHError(f"{known_hosts_name(address, port)} did not complete an SSH handshake: {exc}") from exc
    finally:
        transport.close()


class Connection:
    """One authenticated SSH session to a target, reused for every command of a run."""

    def __init__(self, target: Target, user: str, key: Secret, *, connect_timeout: float = 10) -> None:
        self.target = target
        self.user = user
        self._key = key
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.user}@{self.target.name}>"

    def __enter__(self) -> Connection:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """True while the SSH transport is up."""
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    def open(self) -> None:
        """Connect and log in, accepting only the pinned host key."""
        client = self._client_with_pinned_key()
        try:
            client.connect(
                self.target.address,
                port=self.target.port,
                username=self.user,
                pkey=load_private_key(self._key),
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise self._changed_key_error(exc) from None
        except paramiko.AuthenticationException:
            client.close()
            raise LoginError(
                f"login as {self.user} on {self.target.name} failed: the key was refused; "
                f"add Walle's public key to ~{self.user}/.ssh/authorized_keys on that host"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise SSHError(f"cannot connect to {self.target.name}: {exc}") from None
        self._client = client

    def close(self) -> None:
        """Close the session; safe to call more than once."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int,
        on_line: OnLine,
        stdin: bytes = b"",
    ) -> int:
        """Run ``argv`` on the host, streaming output lines; return the exit status.

        ``stdin`` is sent, then the input is closed (commands reading it see EOF).

        The remote side enforces ``timeout`` with timeout(1); a local deadline a
        little later covers a host that stops answering. A lost connection raises
        SSHError, because there is no exit status to report.
        """
        if self._client is None or not self.is_open:
            raise SSHError(f"not connected to {self.target.name}")
        command = remote_command(argv, cwd=cwd, env=env, timeout=timeout)
        transport = self._client.get_transport()
        assert transport is not None
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()  # commands reading stdin see EOF, not a hang
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"connection to {self.target.name} lost: {exc}") from None
        try:
            return self._pump(channel, time.monotonic() + timeout + _LOCAL_TIMEOUT_MARGIN, on_line, timeout)
        finally:
            channel.close()

    def _pump(self, channel: paramiko.Channel, deadline: float, on_line: OnLine, timeout: int) -> int:
        out = LineSplitter(Stream.STDOUT, on_line)
        err = LineSplitter(Stream.STDERR, on_line)
        exited_at: float | None = None
        try:
            while not _finished(channel, exited_at):
                _drain(channel, out, err)
                if channel.exit_status_ready() and exited_at is None:
                    exited_at = time.monotonic()
                if not self.is_open:
                    break
                if time.monotonic() > deadline:
                    on_line(Stream.ERROR, f"no answer within {timeout} s; gave up on the command")
                    return TIMEOUT_STATUS
                select.select([channel], [], [], 0.2)
            _drain(channel, out, err)
        finally:
            out.close()
            err.close()
        return self._exit_status(channel, on_line)

    def _exit_status(self, channel: paramiko.Channel, on_line: OnLine) -> int:
        # paramiko reports -1 when no exit-status message came: either the
        # connection dropped (we cannot know what happened remotely) or the
        # command died of a signal.
        if channel.exit_status != -1:
            return channel.exit_status
        if not self.is_open:
            raise SSHError(f"connection to {self.target.name} lost while a command was running")
        on_line(Stream.ERROR, "the command ended without an exit status (killed by a signal?)")
        return -1

    def _client_with_pinned_key(self) -> paramiko.SSHClient:
        key_line = self.target.host_key.strip()
        if not key_line:
            raise HostKeyError(f"host {self.target.name} has no pinned host key; run the config check to pin it")
        try:
            key_type, body = parse_key_line(key_line)
            host_key = paramiko.PKey.from_type_string(key_type, base64.b64decode(body))
        except (ValueError, paramiko.SSHException) as exc:
            raise HostKeyError(f"the pinned host key of {self.target.name} is unusable: {exc}") from None
        client = paramiko.SSHClient()
        # RejectPolicy is paramiko's default; set it anyway so nobody "fixes" it.
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        name = known_hosts_name(self.target.address, self.target.port)
        client.get_host_keys().add(name, key_type, host_key)
        return client

    def _changed_key_error(self, exc: paramiko.BadHostKeyException) -> HostKeyError:
        got = f"{exc.key.get_name()} {exc.key.get_base64()}"
        return HostKeyError(
            f"host key of {self.target.name} changed (expected {fingerprint(self.target.host_key)}, "
            f"got {fingerprint(got)}); if this is expected, a Maintainer must re-pin it"
        )


def _finished(channel: paramiko.Channel, exited_at: float | None) -> bool:
    """All output and the exit status are in, or the channel is gone.

    Output can arrive after the exit status, so normally we wait for EOF too;
    but a background process holding the pipes open must not hang the run, so
    two seconds after the exit status we stop waiting for EOF.
    """
    if channel.closed:
        return True
    if channel.exit_status_ready() and channel.eof_received:
        return True
    return exited_at is not None and time.monotonic() - exited_at > 2


def _drain(channel: paramiko.Channel, out: LineSplitter, err: LineSplitter) -> None:
    while channel.recv_ready():
        out.feed(channel.recv(65536))
    while channel.recv_stderr_ready():
        err.feed(channel.recv_stderr(65536))


@dataclass(frozen=True)
class KeyFiles:
    """Paths of a private key and a known_hosts file for ssh(1), git and rsync."""

    directory: str
    key_path: str
    known_hosts_path: str


def _key_dir_prefix() -> str:
    # Host and pid in the name let the reaper tell a dead worker's files from
    # a running one's at once, without waiting for them to age.
    return f"{KEY_DIR_PREFIX}{socket.gethostname()}-{os.getpid()}-"


@contextmanager
def key_files(key: Secret, known_hosts_lines: Sequence[str] = ()) -> Iterator[KeyFiles]:
    """Write the private key (0600) and known_hosts into a fresh 0700 dir under
    Walle's private key root (never a shared temp dir).

    The directory is removed in ``finally`` whatever happens, so no key file
    outlives the step that needed it; if the process is killed, the reaper
    removes it (``remove_stale_key_files``).
    """
    directory = tempfile.mkdtemp(prefix=_key_dir_prefix(), dir=runtime.key_root())  # 0700
    try:
        key_path = os.path.join(directory, "id")
        known_hosts_path = os.path.join(directory, "known_hosts")
        _write_private(key_path, key.value if key.value.endswith("\n") else key.value + "\n")
        _write_private(known_hosts_path, "".join(line + "\n" for line in known_hosts_lines))
        yield KeyFiles(directory, key_path, known_hosts_path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (killed, not yet reaped) is dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # "pid (comm) state ...": comm may hold spaces and parentheses.
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except (OSError, IndexError):
        pass  # no /proc: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(name: str, age: float, older_than: float) -> bool:
    """A key dir is stale when its process (on this host) is gone, or it is old."""
    if age > older_than:
        return True
    # walle-ssh-<host>-<pid>-<random>; mkdtemp's random part has no "-".
    parts = name.removeprefix(KEY_DIR_PREFIX).rsplit("-", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return not _pid_alive(int(parts[1]))


def remove_stale_key_files(older_than: float = 24 * 3600) -> list[str]:
    """Remove key dirs a killed worker left behind (``finally`` never ran); return them.

    A dir whose process on this host is gone goes at once; any other only when
    older than ``older_than`` seconds, so a running deploy keeps its files.
    """
    removed = []
    now = time.time()
    for entry in os.scandir(runtime.key_root()):
        if not entry.name.startswith(KEY_DIR_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # its deploy ended meanwhile and removed it (another worker process)
            continue
        if info.st_uid == os.getuid() and _stale(entry.name, now - info.st_mtime, older_than):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _write_private(path: str, text: str) -> None:
    # O_EXCL + mode 0600 at creation: the file is never readable by others, not
    # even for the moment between create and chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ssh_argv(files: KeyFiles, *, port: int | None = None, connect_timeout: int = 10) -> list[str]:
    """ssh(1) argv that trusts only ``files.known_hosts_path`` and uses only our key.

    ``-F /dev/null`` ignores every ssh_config (the user's and the system's), so
    a planted ``ProxyCommand`` or ``LocalCommand`` is never run.
    """
    argv = ["ssh", "-F", "/dev/null"]
    if port is not None:
        argv += ["-p", str(port)]
    return argv + [
        "-i", files.key_path,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={files.known_hosts_path}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={connect_timeout}",
    ]  # fmt: skip
