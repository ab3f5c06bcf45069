"""Real target hosts and a real git server for deploy tests (no mocks).

A "machine" here is a private mount + PID namespace (PID 1 is nsinit.py) that
shares the root filesystem and the network stack with the test process, plus:

* its own disk: an outside directory bind-mounted over /data (targets) or /srv (git);
* its own sshd with its own ed25519 host key, key-only login for one user;
* for targets, its own nginx (workers run as www) serving /data/nginx/website.

Everything outside the mounted directory (/home, /usr, /etc) is shared, so the
www user's ~/.ssh/authorized_keys is common to all targets, as documented.

Plain Python on purpose: this module must never import Django.
"""

from __future__ import annotations

import functools
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import paramiko

STATE_ROOT = Path("/tmp/walle-infra")
NSINIT = Path(__file__).with_name("nsinit.py")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Daemons and in-host commands get a small predictable environment, not pytest's.
BASE_ENV = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
TARGET_USER = "www"
GIT_USER = "git"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
_PUBLIC_KEY_RE = re.compile(r"^(ssh-|ecdsa-|sk-)[\w@.-]+ [A-Za-z0-9+/]+=*( [^\n]*)?$")
_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


# --------------------------------------------------------------------------- helpers


@functools.cache
def tool(name: str) -> str:
    """Absolute path of a system tool; the venv's PATH may lack the sbin dirs."""
    path = shutil.which(name, path=SYSTEM_PATH)
    if path is None:
        raise FileNotFoundError(f"required tool {name!r} not found in {SYSTEM_PATH}")
    return path


def _check(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv (never via a shell); raise with stderr included on failure."""
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, input=input, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{argv} failed with {result.returncode}: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _make_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # explicit: mkdir's mode is filtered by the umask


def _write_owned(path: Path, text: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    """Atomically replace path, so a concurrently reading sshd never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for parent, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, gid)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"--- {path}: (missing)"
    return f"--- {path} (last {lines} lines):\n" + "\n".join(text[-lines:])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def can_bind(address: str, port: int) -> bool:
    """Whether a listener on address:port could be created right now (probe only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def fetch_host_key(address: str, port: int = 22, timeout: float = 2.0) -> str | None:
    """The host key an sshd presents ("ssh-ed25519 AAAA..."), or None if unreachable.

    Does a real key exchange but never authenticates, so it trusts nothing.
    """
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError:
        return None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except (paramiko.SSHException, OSError, EOFError):
        return None
    finally:
        transport.close()


@functools.cache
def _openssh_version() -> tuple[int, int]:
    # `sshd -V` prints e.g. "OpenSSH_9.2, OpenSSL ..." (Debian 12) on stderr.
    result = subprocess.run([tool("sshd"), "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


# ------------------------------------------------------------------ users and keys


def ensure_user(name: str, shell: str) -> pwd.struct_passwd:
    """Create the system user (home /home/<name>) if missing; make it usable for sshd."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        _check([tool("useradd"), "--system", "--user-group", "--create-home",
                "--home-dir", f"/home/{name}", "--shell", shell, "--password", "*", name])
        pw = pwd.getpwnam(name)
    _unlock_for_sshd(name)
    home = Path(pw.pw_dir)
    if not home.is_dir():
        _make_dir(home, 0o755, pw.pw_uid, pw.pw_gid)
    # StrictModes refuses keys if the home is group/world writable.
    os.chmod(home, home.stat().st_mode & 0o755)
    return pw


def _unlock_for_sshd(name: str) -> None:
    # Without PAM, OpenSSH refuses accounts whose shadow password starts with "!"
    # (useradd's default "locked" marker). "*" is equally password-less but not locked.
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name and fields[1].startswith("!"):
            _check([tool("usermod"), "--password", "*", name])


def _authorized_keys_path(user: str) -> tuple[Path, pwd.struct_passwd]:
    pw = pwd.getpwnam(user)
    ssh_dir = Path(pw.pw_dir) / ".ssh"
    _make_dir(ssh_dir, 0o700, pw.pw_uid, pw.pw_gid)
    return ssh_dir / "authorized_keys", pw


def authorize_key(user: str, public_key_line: str) -> None:
    """Append a public key to ~user/.ssh/authorized_keys (idempotent, StrictModes-safe perms)."""
    line = public_key_line.strip()
    if not _PUBLIC_KEY_RE.match(line):
        raise ValueError(f"not a single OpenSSH public key line: {public_key_line!r}")
    path, pw = _authorized_keys_path(user)
    lines = path.read_text().splitlines() if path.exists() else []
    if not any(old.split()[:2] == line.split()[:2] for old in lines):  # same type + key
        lines.append(line)
    _write_owned(path, "".join(f"{entry}\n" for entry in lines), 0o600, pw.pw_uid, pw.pw_gid)


def revoke_keys(user: str) -> None:
    """Remove every authorized key of user (the file stays, empty)."""
    path, pw = _authorized_keys_path(user)
    _write_owned(path, "", 0o600, pw.pw_uid, pw.pw_gid)


# ------------------------------------------------------------------------ machines


class Machine:
    """One namespace "machine": a bind-mounted disk and an sshd; subclasses add services."""

    login_user: str
    mount_point: str  # where self.root appears inside the machine

    def __init__(self, address: str, port: int, state_dir: Path) -> None:
        self.address = address
        self.port = port
        self.state_dir = state_dir
        self.root = state_dir / "disk"
        self.host_key = ""
        self._unshare: subprocess.Popen[bytes] | None = None
        self._init_pid: int | None = None
        # Tests kill machines from timer and engine threads; start/kill must not interleave.
        self._lifecycle = threading.RLock()
        self._key_path = state_dir / "ssh_host_ed25519_key"
        # Host keys and configs are root-only; www must not wander into other hosts' disks.
        _make_dir(state_dir.parent, 0o700)
        _make_dir(state_dir, 0o700)
        _make_dir(self.root, 0o755)
        if self._key_path.exists():
            self.host_key = self._read_host_key()
        else:
            self._generate_host_key()
        self._write_sshd_config()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def name(self) -> str:
        return self.address if self.port == 22 else f"{self.address}:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        """An OpenSSH known_hosts line pinning this machine's current host key."""
        pattern = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{pattern} {self.host_key}"

    # -- host key and sshd config

    def _read_host_key(self) -> str:
        key_type, key_data = self._key_path.with_suffix(".pub").read_text().split()[:2]
        return f"{key_type} {key_data}"

    def _generate_host_key(self) -> None:
        # ssh-keygen will not overwrite silently: generate aside, then swap atomically.
        with tempfile.TemporaryDirectory(dir=self.state_dir) as tmp:
            new = Path(tmp) / "key"
            _check([tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", f"walle-test-{self.name}",
                    "-f", str(new)])
            os.replace(new.with_suffix(".pub"), self._key_path.with_suffix(".pub"))
            os.replace(new, self._key_path)
        self.host_key = self._read_host_key()

    def _write_sshd_config(self) -> None:
        options = [
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {self._key_path}",
            f"PidFile {self.state_dir / 'sshd.pid'}",
            f"AllowUsers {self.login_user}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin no",
            "UsePAM no",
            "StrictModes yes",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            # Deploy tests open many connections and channels in parallel.
            "MaxStartups 100",
            "MaxSessions 20",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
        ]
        if _openssh_version() >= (9, 8):
            # Newer sshd penalises sources with failed/unauthenticated connections
            # (our readiness probes, negative auth tests) by refusing them for a while.
            options.append("PerSourcePenalties no")
        _write_owned(self.state_dir / "sshd_config", "".join(f"{o}\n" for o in options), 0o600)

    # -- lifecycle

    def _services(self) -> dict[str, list[str]]:
        return {
            "sshd": [tool("sshd"), "-D", "-f", str(self.state_dir / "sshd_config"),
                     "-E", str(self.state_dir / "sshd.log")],
        }

    def _log_files(self) -> list[Path]:
        return [self.state_dir / "nsinit.log", self.state_dir / "sshd.log"]

    def _healthy(self) -> bool:
        return fetch_host_key(self.address, self.port) == self.host_key

    def is_running(self) -> bool:
        return self._unshare is not None and self._unshare.poll() is None

    def _spawn(self) -> None:
        """Create the namespaces and let nsinit.py mount the disk and start the services."""
        spec = {"binds": [[str(self.root), self.mount_point]], "services": self._services()}
        spec_path = self.state_dir / "nsinit.json"
        _write_owned(spec_path, json.dumps(spec, indent=1), 0o600)
        argv = [tool("unshare"), "--mount", "--pid", "--fork", "--kill-child",
                "--propagation", "private", "--mount-proc",
                sys.executable, "-I", str(NSINIT), str(spec_path)]
        with open(self.state_dir / "nsinit.log", "ab") as log:
            # New session: a Ctrl-C in the terminal must not crash the hosts before teardown.
            self._unshare = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=BASE_ENV, cwd="/", start_new_session=True)
        self._init_pid = self._wait_for_init()

    def _wait_for_init(self) -> int:
        assert self._unshare is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._unshare.poll() is None:
            children = _children(self._unshare.pid)
            if children:
                return children[0]
            time.sleep(0.01)
        raise RuntimeError(f"{self!r}: namespace init did not start\n{self.logs()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._healthy():
            if not self.is_running():
                raise RuntimeError(f"{self!r} died while starting\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self!r} not ready after {START_TIMEOUT}s\n{self.logs()}")
            time.sleep(POLL_INTERVAL)

    def logs(self) -> str:
        """Tails of this machine's logs, for failure messages."""
        return "\n".join(_tail(path) for path in self._log_files())

    def start(self) -> None:
        """Boot the machine (no-op if running); returns once sshd serves self.host_key."""
        with self._lifecycle:
            if not self.is_running():
                self._spawn()
            self._wait_ready()

    def kill(self) -> None:
        """SIGKILL everything in the machine (sshd, its sessions, nginx): a crash.

        Killing PID 1 of a PID namespace makes the kernel kill all its other
        processes; unshare exits only after they are all gone, so when this
        returns every port of the machine refuses connections.
        """
        with self._lifecycle:
            if self.is_running() and self._init_pid is not None:
                os.kill(self._init_pid, signal.SIGKILL)
            self._reap()

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM to everything), falling back to kill()."""
        if self.is_running() and self._init_pid is not None:
            os.kill(self._init_pid, signal.SIGTERM)
            try:
                assert self._unshare is not None
                self._unshare.wait(timeout=STOP_TIMEOUT / 2)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _reap(self) -> None:
        if self._unshare is not None:
            self._unshare.wait(timeout=STOP_TIMEOUT)
        self._unshare = None
        self._init_pid = None

    def ensure_running(self) -> None:
        """Make sure the machine runs and serves its current host key (restart if unhealthy)."""
        with self._lifecycle:
            if self.is_running() and self._healthy():
                return
            self.kill()
            self.start()

    def rotate_host_key(self) -> None:
        """New ed25519 host key; a running sshd is restarted (SIGHUP re-exec) to serve it."""
        self._generate_host_key()
        if not self.is_running():
            return
        listeners = [pid for pid in _children(self._init_pid or 0) if _comm(pid) == "sshd"]
        if listeners:
            # sshd -D re-executes itself on SIGHUP, rereading config and host keys;
            # established sessions survive, as with a real "systemctl reload ssh".
            os.kill(listeners[0], signal.SIGHUP)
            self._wait_ready()
        else:
            self.kill()
            self.start()

    # -- inside the machine

    def run(self, argv: Sequence[str], *, user: str | None = None, check: bool = False,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run argv inside the machine's namespaces (as root, or as `user`); output is captured."""
        if not self.is_running() or self._init_pid is None:
            raise RuntimeError(f"{self!r} is not running")
        command = [tool("nsenter"), f"--target={self._init_pid}", "--mount", "--pid", "--"]
        env = dict(BASE_ENV, HOME="/root", USER="root", LOGNAME="root")
        if user is not None:
            pw = pwd.getpwnam(user)
            command += [tool("setpriv"), f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                        "--init-groups", "--"]
            env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
        return subprocess.run(command + list(argv), input=input, capture_output=True, text=True,
                              check=check, timeout=timeout, env=env, cwd="/")


def start_all(machines: Iterable[Machine]) -> None:
    """Start several machines concurrently (boot all, then wait for each)."""
    machines = list(machines)
    for machine in machines:
        if not machine.is_running():
            machine._spawn()
    for machine in machines:
        machine._wait_ready()


def _state_name(address: str, port: int) -> str:
    return address if port == 22 else f"{address}_{port}"


class TargetHost(Machine):
    """A deploy target: sshd for user www on address:port and nginx on address:http_port."""

    login_user = TARGET_USER
    mount_point = "/data"

    def __init__(self, address: str, port: int = 22, *, http_port: int | None = None,
                 state_root: Path = STATE_ROOT) -> None:
        self._www = ensure_user(TARGET_USER, "/bin/bash")
        super().__init__(address, port, state_root / _state_name(address, port))
        self.http_port = http_port if http_port is not None else choose_http_port(address)
        self._write_nginx_config()
        self.reset()

    def _write_nginx_config(self) -> None:
        group = grp.getgrgid(self._www.pw_gid).gr_name
        state = self.state_dir
        config = f"""\
# Generated by tests/infra/hosts.py for {self.name}; runs inside the host's namespaces.
daemon off;
master_process on;
user {TARGET_USER} {group};
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {state}/nginx-access.log;
    server_tokens off;
    server {{
        listen {self.address}:{self.http_port};
        server_name _;
        # The deploy tool atomically swaps this symlink; nginx resolves it per request.
        root /data/nginx/website;
        index index.html;
        location / {{ try_files $uri $uri/ =404; }}
    }}
}}
"""
        _write_owned(state / "nginx.conf", config, 0o600)

    def _services(self) -> dict[str, list[str]]:
        nginx = [tool("nginx"), "-e", str(self.state_dir / "nginx-error.log"),
                 "-c", str(self.state_dir / "nginx.conf")]
        return {**super()._services(), "nginx": nginx}

    def _log_files(self) -> list[Path]:
        return [*super()._log_files(), self.state_dir / "nginx-error.log"]

    def _healthy(self) -> bool:
        return super()._healthy() and port_open(self.address, self.http_port)

    def reset(self) -> None:
        """Wipe this host's whole /data; recreate /data/nginx and /data/releases owned by www."""
        for entry in self.root.iterdir():
            _remove(entry)
        _make_dir(self.root, 0o755)  # /data itself stays root's: www writes only below
        for sub in ("nginx", "releases"):
            _make_dir(self.root / sub, 0o755, self._www.pw_uid, self._www.pw_gid)

    def data_path(self, inside: str) -> Path:
        """Outside path of an inside path under /data.

        Symlinks in the parent components are resolved the way the host sees
        them (absolute targets are inside paths), so "/data/nginx/website/x"
        works through the webroot symlink; the last component is not followed.
        """
        path = PurePosixPath(inside)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError(f"need an absolute inside path without '..': {inside!r}")
        outside = self._outside(self._resolve(path.parent, depth=0) / path.name)
        if outside is None:
            raise ValueError(f"{inside} is not on the disk ({self.mount_point}) of {self.name}")
        return outside

    def _resolve(self, inside: PurePosixPath, depth: int) -> PurePosixPath:
        """Fully resolve an inside path (like realpath, within this host's /data)."""
        if depth > 40:
            raise OSError(f"too many levels of symbolic links: {inside}")
        current = PurePosixPath("/")
        for part in inside.parts[1:]:
            if part == "..":
                current = current.parent
                continue
            candidate = current / part
            outside = self._outside(candidate)
            if outside is not None and outside.is_symlink():
                target = PurePosixPath(os.readlink(outside))
                candidate = self._resolve(target if target.is_absolute() else current / target, depth + 1)
            current = candidate
        return current

    def _outside(self, inside: PurePosixPath) -> Path | None:
        try:
            return self.root / inside.relative_to(self.mount_point)
        except ValueError:
            return None  # not on this host's disk: no symlinks of ours to follow

    def readlink(self, inside: str) -> str:
        """Target of the symlink at an inside path, as the host sees it (an inside path)."""
        return os.readlink(self.data_path(inside))

    def http_get(self, path: str = "/") -> str:
        """GET through this host's nginx; raises urllib.error.HTTPError on non-2xx."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        # No proxies: an http_proxy from the environment must not intercept loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{self.address}:{self.http_port}{path}", timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {path} on {self.name}: HTTP {response.status}")
            return response.read().decode("utf-8")


def choose_http_port(address: str) -> int:
    """80, or the fixed fallback 8000 + last octet (127.0.0.11 -> 8011) if 80 is taken."""
    if can_bind(address, 80):
        return 80
    return 8000 + int(address.rsplit(".", 1)[1])


class GitServer(Machine):
    """sshd for user git (git-shell) with bare repositories in /srv/git inside."""

    login_user = GIT_USER
    mount_point = "/srv"

    def __init__(self, address: str = "127.0.0.10", port: int = 22, *,
                 state_root: Path = STATE_ROOT) -> None:
        self._git = ensure_user(GIT_USER, tool("git-shell"))
        super().__init__(address, port, state_root / f"git-{_state_name(address, port)}")
        _make_dir(self.repos_dir, 0o755, self._git.pw_uid, self._git.pw_gid)

    @property
    def repos_dir(self) -> Path:
        """Outside path of /srv/git."""
        return self.root / "git"

    def url(self, name: str) -> str:
        """ssh URL of a repository, e.g. ssh://git@127.0.0.10/srv/git/app.git."""
        host = self.address if self.port == 22 else f"{self.address}:{self.port}"
        return f"ssh://{GIT_USER}@{host}/srv/git/{self._check_name(name)}.git"

    def repo_path(self, name: str) -> Path:
        """Outside path of the bare repository."""
        return self.repos_dir / f"{self._check_name(name)}.git"

    @staticmethod
    def _check_name(name: str) -> str:
        if not _REPO_NAME_RE.match(name) or name.endswith(".git"):
            raise ValueError(f"bad repository name {name!r} (letters, digits, ._-; no .git suffix)")
        return name

    def create_repo(self, name: str, default_branch: str = "master") -> None:
        """(Re)create an empty bare repository owned by git; HEAD -> default_branch."""
        path = self.repo_path(name)
        if path.exists():
            shutil.rmtree(path)
        _check([tool("git"), "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)],
               env=_git_env(Path(tempfile.gettempdir())))
        _chown_tree(path, self._git.pw_uid, self._git.pw_gid)

    def commit(self, name: str, files: Mapping[str, str], message: str, branch: str = "master",
               tag: str | None = None, *, annotated: bool = False, delete: Iterable[str] = (),
               executable: Iterable[str] = ()) -> str:
        """Commit files (relative path -> text) on top of branch's tip; return the 40-hex SHA.

        Written straight into the bare repository with git plumbing (no work tree),
        like a push. The branch is created if new; `tag` adds a lightweight tag,
        or an annotated one (message = commit message) if `annotated`.
        """
        repo = self.repo_path(name)
        if not repo.is_dir():
            raise FileNotFoundError(f"no repository {name!r}; call create_repo first")
        executables = set(executable)
        with tempfile.TemporaryDirectory() as tmp:
            git = _Git(repo, _git_env(Path(tmp), index=Path(tmp) / "index"))
            parent = git.rev_or_none(f"refs/heads/{branch}")
            if parent:
                git("read-tree", parent)
            index_info = [_index_line(path, git("hash-object", "-w", "--stdin", input=content),
                                      executable=path in executables)
                          for path, content in files.items()]
            # Mode 0 with a null SHA removes a path (works without a work tree).
            index_info += [_index_line(path, "0" * 40, mode="0") for path in delete]
            git("update-index", "--index-info", input="".join(index_info))
            tree = git("write-tree")
            sha = git("commit-tree", tree, "-m", message, *(["-p", parent] if parent else []))
            git("update-ref", f"refs/heads/{branch}", sha, parent or "0" * 40)
            if tag is not None:
                git("tag", *(["-a", "-m", message] if annotated else []), "--", tag, sha)
        _chown_tree(repo, self._git.pw_uid, self._git.pw_gid)
        assert _SHA_RE.match(sha), sha
        return sha

    def delete_file(self, name: str, path: str, message: str, branch: str = "master") -> str:
        """Commit the removal of one file; returns the new SHA."""
        return self.commit(name, {}, message, branch, delete=[path])

    def rev_parse(self, name: str, rev: str) -> str:
        """Full SHA of a commit-ish (branch, tag, ...) in the bare repository."""
        with tempfile.TemporaryDirectory() as tmp:
            return _Git(self.repo_path(name), _git_env(Path(tmp)))("rev-parse", "--verify", f"{rev}^{{commit}}")


def _index_line(path: str, sha: str, *, executable: bool = False, mode: str | None = None) -> str:
    """One `git update-index --index-info` line: "<mode> <sha>\t<path>\n"."""
    if path.startswith("/") or any(char in path for char in "\t\n\0"):
        raise ValueError(f"bad repository path {path!r}")
    return f"{mode or ('100755' if executable else '100644')} {sha}\t{path}\n"


def _git_env(home: Path, index: Path | None = None) -> dict[str, str]:
    # Deterministic identity; ignore any system/global git config on the machine.
    env = dict(BASE_ENV, HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="Walle Test", GIT_AUTHOR_EMAIL="walle-test@example.invalid",
               GIT_COMMITTER_NAME="Walle Test", GIT_COMMITTER_EMAIL="walle-test@example.invalid")
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    return env


class _Git:
    """git against one bare repository, run as root (safe.directory: it is owned by git)."""

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self._base = [tool("git"), "-c", "safe.directory=*", f"--git-dir={repo}"]
        self._env = env

    def __call__(self, *args: str, input: str | None = None) -> str:
        return _check([*self._base, *args], env=self._env, input=input).stdout.strip()

    def rev_or_none(self, ref: str) -> str | None:
        result = subprocess.run([*self._base, "rev-parse", "--verify", "--quiet", ref],
                                capture_output=True, text=True, env=self._env, check=False)
        return result.stdout.strip() if result.returncode == 0 else None
