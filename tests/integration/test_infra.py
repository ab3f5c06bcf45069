"""Smoke tests for the real-host test infrastructure in tests/infra (real sshd/nginx/git)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from tests.infra.hosts import GitServer, TargetHost, authorize_key, fetch_host_key

# Self-sufficient when run alone; a no-op if tests/conftest.py already registers it.
pytest_plugins = ["tests.infra.plugin"]
pytestmark = pytest.mark.sshd


@dataclass
class KeyPair:
    private: Path
    public: str


@pytest.fixture
def client_key(tmp_path: Path) -> KeyPair:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "walle-test-client",
                    "-f", str(path)], check=True)
    return KeyPair(path, path.with_suffix(".pub").read_text().strip())


@pytest.fixture
def www_key(client_key: KeyPair) -> KeyPair:
    authorize_key("www", client_key.public)
    return client_key


def connect(host: TargetHost, key: KeyPair, pinned: str | None = None) -> paramiko.SSHClient:
    """Log in as www trusting only `pinned` (default: the host's own key), never adding keys."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    line = f"{host.known_hosts_line.split()[0]} {pinned or host.host_key}"
    entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
    assert entry is not None and entry.key is not None
    for hostname in entry.hostnames:
        client.get_host_keys().add(hostname, entry.key.get_name(), entry.key)
    client.connect(host.address, port=host.port, username="www", key_filename=str(key.private),
                   look_for_keys=False, allow_agent=False, timeout=10)
    return client


def remote(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    status = stdout.channel.recv_exit_status()
    output = stdout.read().decode()
    assert status == 0, f"{command!r} exited {status}: {stderr.read().decode()}"
    return output


def refuses_connections(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def ssh_command(known_hosts: Path, key: KeyPair) -> list[str]:
    return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "IdentitiesOnly=yes",
            "-i", str(key.private)]


def test_each_host_has_its_own_data(hosts: list[TargetHost]) -> None:
    for host in hosts:
        host.data_path(f"/data/releases/only-on-{host.address}").write_text(host.name)
    for host in hosts:
        listing = host.run(["ls", "/data/releases"], check=True).stdout.split()
        assert listing == [f"only-on-{host.address}"]
        mounts = host.run(["findmnt", "--noheadings", "--output", "SOURCE", "/data"], check=True)
        assert str(host.root) in mounts.stdout
    assert not Path(f"/data/releases/only-on-{hosts[0].address}").exists()  # root namespace


def test_www_may_write_only_below_nginx_and_releases(hosts: list[TargetHost]) -> None:
    host = hosts[0]
    for allowed in ("/data/releases/x", "/data/nginx/x"):
        assert host.run(["touch", allowed], user="www").returncode == 0
    assert host.run(["touch", "/data/x"], user="www").returncode != 0


def test_www_logs_in_with_pinned_host_key(hosts: list[TargetHost], www_key: KeyPair) -> None:
    for host in hosts:
        with connect(host, www_key) as client:
            assert remote(client, "id -un").strip() == "www"
            assert "rsync" in remote(client, "rsync --version")
            remote(client, f"touch /data/releases/via-ssh-{host.address}")
        assert host.data_path(f"/data/releases/via-ssh-{host.address}").exists()
    assert not hosts[1].data_path(f"/data/releases/via-ssh-{hosts[0].address}").exists()


def test_another_hosts_key_is_rejected(hosts: list[TargetHost], www_key: KeyPair) -> None:
    assert len({host.host_key for host in hosts}) == len(hosts)
    with pytest.raises(paramiko.BadHostKeyException):
        connect(hosts[0], www_key, pinned=hosts[1].host_key)


def test_password_and_keyboard_interactive_are_refused(hosts: list[TargetHost]) -> None:
    transport = paramiko.Transport((hosts[0].address, hosts[0].port))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            transport.auth_password("www", "www")
        assert refused.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_unauthorized_key_is_refused(hosts: list[TargetHost], client_key: KeyPair) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        connect(hosts[0], client_key)


def test_nginx_serves_the_symlinked_webroot(hosts: list[TargetHost]) -> None:
    for host in hosts:
        for release in ("r1", "r2"):
            host.data_path(f"/data/releases/{release}").mkdir()
            host.data_path(f"/data/releases/{release}/index.html").write_text(f"{release} on {host.name}")
        os.symlink("/data/releases/r1", host.data_path("/data/nginx/website"))
        assert host.http_get("/") == f"r1 on {host.name}"
        # Atomic switch, as a deploy does it: new link beside, then rename over.
        os.symlink("/data/releases/r2", host.data_path("/data/nginx/website.new"))
        os.replace(host.data_path("/data/nginx/website.new"), host.data_path("/data/nginx/website"))
        assert host.readlink("/data/nginx/website") == "/data/releases/r2"
        assert host.data_path("/data/nginx/website/index.html").read_text() == f"r2 on {host.name}"
        assert host.http_get("/index.html") == f"r2 on {host.name}"
        with pytest.raises(urllib.error.HTTPError):
            host.http_get("/missing.html")


def test_kill_crashes_the_host_and_start_brings_it_back(hosts: list[TargetHost], www_key: KeyPair) -> None:
    host = hosts[2]
    key = host.host_key
    host.data_path("/data/releases/survivor").write_text("on disk")
    host.kill()
    assert refuses_connections(host.address, host.port)
    assert refuses_connections(host.address, host.http_port)
    host.start()
    assert host.host_key == key == fetch_host_key(host.address, host.port)
    with connect(host, www_key) as client:
        assert remote(client, "cat /data/releases/survivor") == "on disk"


def test_rotate_host_key(hosts: list[TargetHost], www_key: KeyPair) -> None:
    host, other = hosts[1], hosts[0]
    old, other_key = host.host_key, other.host_key
    host.rotate_host_key()
    assert host.host_key != old
    assert fetch_host_key(host.address, host.port) == host.host_key
    assert other.host_key == other_key == fetch_host_key(other.address, other.port)
    with pytest.raises(paramiko.BadHostKeyException):
        connect(host, www_key, pinned=old)
    with connect(host, www_key) as client:
        assert remote(client, "id -un").strip() == "www"


def test_extra_host_on_custom_port(extra_host: TargetHost, www_key: KeyPair) -> None:
    extra_host.reset()
    assert extra_host.name == "127.0.0.14:2214"
    assert extra_host.known_hosts_line.startswith("[127.0.0.14]:2214 ssh-ed25519 ")
    with connect(extra_host, www_key) as client:
        remote(client, "mkdir /data/releases/r1 && echo extra > /data/releases/r1/index.html"
                       " && ln -s /data/releases/r1 /data/nginx/website")
    assert extra_host.http_get() == "extra\n"


def test_rsync_over_ssh_with_strict_host_keys(hosts: list[TargetHost], www_key: KeyPair,
                                              tmp_path: Path) -> None:
    host = hosts[0]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(host.known_hosts_line + "\n")
    source = tmp_path / "build"
    source.mkdir()
    (source / "app.txt").write_text("built")
    subprocess.run(["rsync", "-a", "-e", shlex.join(ssh_command(known_hosts, www_key)),
                    f"{source}/", f"www@{host.address}:/data/releases/r1/"], check=True, timeout=60)
    assert host.data_path("/data/releases/r1/app.txt").read_text() == "built"
    assert host.data_path("/data/releases/r1/app.txt").stat().st_uid == host.data_path("/data/releases").stat().st_uid


def test_git_clone_over_ssh_with_pinned_key(git_server: GitServer, client_key: KeyPair,
                                            tmp_path: Path) -> None:
    authorize_key("git", client_key.public)
    git_server.create_repo("smoke")
    git_server.commit("smoke", {"README": "one\n"}, "first")
    sha = git_server.commit("smoke", {"app/main.py": "print('hi')\n"}, "second", tag="v1")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(git_server.known_hosts_line + "\n")
    env = dict(os.environ, GIT_SSH_COMMAND=shlex.join(ssh_command(known_hosts, client_key)),
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", git_server.url("smoke"), str(clone)],
                   check=True, env=env, timeout=60)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD", "v1"],
                          check=True, capture_output=True, text=True, env=env).stdout.split()
    assert head == [sha, sha]
    assert (clone / "README").read_text() == "one\n"
    assert (clone / "app/main.py").read_text() == "print('hi')\n"

    known_hosts.write_text(f"{git_server.address} {hosts_key_of_someone_else(tmp_path)}\n")
    refused = subprocess.run(["git", "ls-remote", git_server.url("smoke")],
                             capture_output=True, text=True, env=env, timeout=60, check=False)
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr


def hosts_key_of_someone_else(tmp_path: Path) -> str:
    path = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])
