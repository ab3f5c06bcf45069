"""Every escape route a hostile build hook or repository was found to have,
tried end to end on the real hosts through the worker's own deploy path.

Each test plants what the attack needs, runs the next deploy(s), then checks
that a canary secret shows up nowhere: not in the log, not in a file the
planted command would write, not in any process's command line.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from engine import git as engine_git
from releases.models import DeployRun
from tests.deploy_fixtures import PAGE, Site, deploy_now, open_approved_ticket
from tests.infra.hosts import _chown_tree, _Git, _git_env

pytestmark = [pytest.mark.sshd, pytest.mark.django_db(transaction=True)]


class Canary:
    """Walle's secret key is what an attacker wants; ``exfil`` is where a
    planted command would copy it, ``ran`` proves the command ran at all."""

    def __init__(self, tmp_path: Path) -> None:
        tag = uuid.uuid4().hex[:10]
        self.secret = django_settings.SECRET_KEY
        self.secret_file = django_settings.DATA_DIR / "secret_key"
        self.ran = Path(f"/tmp/walle-canary-ran-{tag}")
        self.exfil = Path(f"/tmp/walle-canary-exfil-{tag}")
        self.command = f"touch {self.ran}; cat {self.secret_file} > {self.exfil}"

    def assert_silent(self, *runs: DeployRun) -> None:
        assert not self.ran.exists(), "a planted command ran outside the sandbox"
        assert not self.exfil.exists(), "a planted command copied Walle's secret key"
        for run in runs:
            texts = "\n".join(run.log_lines.values_list("text", flat=True))
            assert self.secret not in texts
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert self.secret.encode() not in cmdline.read_bytes()
            except OSError:
                continue  # the process ended while we looked


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _open_up(top: Path) -> None:
    """Make ``top`` readable and writable by every user, as the worker's own
    files are to a hook that runs as the worker's user: then only the
    sandbox (not file permissions) can keep a hook out."""
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, 0o777 if path.is_dir() else 0o666)


@pytest.fixture
def open_dir():
    """A fresh directory outside /tmp (which is private inside the sandbox anyway)."""
    ARTIFACTS.mkdir(exist_ok=True)
    os.chmod(ARTIFACTS, 0o777)
    path = ARTIFACTS / f"escape-{uuid.uuid4().hex[:10]}"
    path.mkdir()
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def canary(tmp_path: Path):
    found = Canary(tmp_path)
    yield found
    found.ran.unlink(missing_ok=True)
    found.exfil.unlink(missing_ok=True)


def _deploy(site: Site, label: str) -> DeployRun:
    run = deploy_now(site.users["developer"], open_approved_ticket(site, label))
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    return run


def _hook_deploy(site: Site, label: str, *, pre: str = "", post: str = "") -> DeployRun:
    site.project.pre_deploy, site.project.post_deploy = pre, post
    site.project.save()
    try:
        return deploy_now(site.users["developer"], open_approved_ticket(site, label))
    finally:
        site.project.pre_deploy = site.project.post_deploy = ""
        site.project.save()


def _texts(run: DeployRun) -> list[str]:
    return list(run.log_lines.values_list("text", flat=True))


@pytest.fixture
def ssh_config_of_this_user():
    """~/.ssh/config as ssh finds it (through the passwd entry, not $HOME);
    whatever a test plants there is put back afterwards."""
    path = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "config"
    before = path.read_bytes() if path.exists() else None
    yield path
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(before)


def test_a_hook_cannot_plant_git_or_ssh_config_for_walle(site, canary, monkeypatch, open_dir, ssh_config_of_this_user):
    home = open_dir / "worker-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(canary.secret)  # what a worker user's home may hold
    _open_up(home)
    monkeypatch.setenv("HOME", str(home))  # the worker's own HOME, as on a real deploy host
    real_ssh_config = ssh_config_of_this_user
    planted = "\n".join([
        # The proved route: ~/.gitconfig hooksPath and ~/.ssh/config ProxyCommand.
        f'mkdir -p "$HOME/.ssh" "$HOME/h" && printf "#!/bin/sh\\n{canary.command}\\n" > "$HOME/h/reference-transaction"',
        'chmod +x "$HOME/h/reference-transaction"',
        'printf "[core]\\n\\thooksPath = %s/h\\n" "$HOME" > "$HOME/.gitconfig"',
        f'printf "Host *\\n  ProxyCommand sh -c \\"{canary.command}\\"\\n" > "$HOME/.ssh/config"',
        f'echo x > {home}/.gitconfig 2>/dev/null || echo "worker home out of reach"',
        f'echo x > {real_ssh_config} 2>/dev/null || echo "ssh config out of reach"',
        f'cat {home}/.ssh/id_ed25519 2>/dev/null || echo "worker keys hidden"',
        'echo "hook home is $HOME"',
    ])
    run = _hook_deploy(site, "v1", post=planted)
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    assert "worker home out of reach" in _texts(run) and "ssh config out of reach" in _texts(run)
    assert "worker keys hidden" in _texts(run)
    assert not (home / ".gitconfig").exists() and not (home / ".ssh" / "config").exists()
    # Even a config that did get into the worker's HOME (say, by an older Walle)
    # is ignored by every git, ssh and rsync Walle runs: fetch, export, copy.
    (home / "h").mkdir()
    (home / "h" / "reference-transaction").write_text(f"#!/bin/sh\n{canary.command}\n")
    (home / "h" / "reference-transaction").chmod(0o755)
    (home / ".gitconfig").write_text(f"[core]\n\thooksPath = {home}/h\n")
    real_ssh_config.parent.mkdir(mode=0o700, exist_ok=True)
    real_ssh_config.write_text(f'Host *\n  ProxyCommand sh -c "{canary.command}"\n')
    (home / ".popt").write_text(f"rsync alias --archive --rsh={canary.ran}\n")
    site.push("v2", "second")
    second = _deploy(site, "v2")
    assert all("second" in page for page in site.pages())
    canary.assert_silent(run, second)


def test_a_hook_cannot_reach_or_poison_the_mirror(site, canary, settings, open_dir):
    settings.WALLE_WORKSPACE_ROOT = open_dir / "workspaces"
    workspace = Path(site.project.effective_workspace)
    mirror = workspace / engine_git.MIRROR_DIR
    _deploy(site, "v1")  # the mirror exists now
    _open_up(open_dir)
    config_before = (mirror / "config").read_text()
    attack = "\n".join([
        f'ls {mirror} >/dev/null 2>&1 && echo "mirror visible" || echo "mirror hidden"',
        f'echo "[filter \\"x\\"]" >> {mirror}/config 2>/dev/null || echo "mirror config not writable"',
        f'mkdir -p {mirror}/hooks 2>/dev/null || echo "mirror hooks not writable"',
    ])
    site.push("v2", "second")
    run = _hook_deploy(site, "v2", post=attack)
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    texts = _texts(run)
    assert "mirror hidden" in texts and "mirror config not writable" in texts and "mirror hooks not writable" in texts
    assert (mirror / "config").read_text() == config_before
    # A mirror poisoned some other way (an older Walle let hooks write it) is
    # cleaned before the next fetch and export: no filter, no hook runs.
    with open(mirror / "config", "a") as handle:
        handle.write(f'[filter "evil"]\n\tsmudge = sh -c "{canary.command}; cat"\n\trequired = true\n')
    (mirror / "info").mkdir(exist_ok=True)
    (mirror / "info" / "attributes").write_text("* filter=evil\n")
    (mirror / "hooks").mkdir(exist_ok=True)
    (mirror / "hooks" / "reference-transaction").write_text(f"#!/bin/sh\n{canary.command}\n")
    (mirror / "hooks" / "reference-transaction").chmod(0o755)
    site.push("v3", "third")
    third = _deploy(site, "v3")
    assert all("third" in page for page in site.pages())
    assert "filter" not in (mirror / "config").read_text() and not (mirror / "hooks").exists()
    canary.assert_silent(run, third)


def test_a_root_worker_runs_hooks_without_privileges_that_could_undo_the_sandbox(site, canary):
    if os.geteuid() != 0:
        pytest.skip("this route needs a worker running as root")
    data_dir = django_settings.DATA_DIR
    attack = "\n".join([
        'echo "uid=$(id -u)"',
        "umount -l /tmp 2>/dev/null || echo 'umount refused'",
        f"umount -l {data_dir} 2>/dev/null || echo 'umount refused'",
        f"cat {canary.secret_file} 2>/dev/null || echo 'secret still hidden'",
        "grep ^CapEff /proc/self/status",
    ])
    run = _hook_deploy(site, "v1", pre=attack)
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    texts = _texts(run)
    assert texts.count("umount refused") == 2 and "secret still hidden" in texts and "uid=0" not in texts
    assert any(t.startswith("CapEff:") and t.endswith("0000000000000000") for t in texts)
    canary.assert_silent(run)


def _push_replace_ref(site: Site, approved: str, evil: str) -> None:
    repo = site.git_server.repo_path(site.repo)
    with_env = _Git(repo, _git_env(Path("/tmp")))
    with_env("update-ref", f"refs/replace/{approved}", evil)
    _chown_tree(repo, site.git_server._git.pw_uid, site.git_server._git.pw_gid)


def test_a_replace_ref_pushed_after_approval_cannot_change_what_is_deployed(site):
    approved = site.commits["v1"]
    ticket = open_approved_ticket(site, "v1")
    evil = site.git_server.commit(site.repo, {"index.html": PAGE.format("EVIL")}, "evil", branch="evil")
    _push_replace_ref(site, approved, evil)
    run = deploy_now(site.users["developer"], ticket)
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    assert all("EVIL" not in page for page in site.pages())
    mirror = Path(site.project.effective_workspace) / engine_git.MIRROR_DIR
    refs = subprocess.run(["git", "--git-dir", str(mirror), "for-each-ref", "--format=%(refname)"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert refs and all(ref.startswith(("refs/heads/", "refs/tags/")) for ref in refs)
    assert any("verified" in text for text in _texts(run))


def test_symlinks_in_the_repository_are_deployed_as_links(site):
    repo = site.git_server.repo_path(site.repo)
    git = _Git(repo, _git_env(Path("/tmp")))
    passwd_blob = git("hash-object", "-w", "--stdin", input="/etc/passwd")
    up_blob = git("hash-object", "-w", "--stdin", input="../../../../outside")
    page_blob = git("hash-object", "-w", "--stdin", input=PAGE.format("links"))
    parent = git("rev-parse", "refs/heads/master")
    tree = git("mktree", input=f"120000 blob {passwd_blob}\tabs\n100644 blob {page_blob}\tindex.html\n"
                               f"120000 blob {up_blob}\tup\n")
    sha = git("commit-tree", tree, "-p", parent, "-m", "links")
    git("update-ref", "refs/heads/master", sha)
    _chown_tree(repo, site.git_server._git.pw_uid, site.git_server._git.pw_gid)
    site.commits["links"] = sha
    run = _deploy(site, "links")
    for target in site.targets:
        release = f"{site.project.effective_release_library}/{run.release_name}"
        assert target.readlink(f"{release}/abs") == "/etc/passwd"
        assert target.readlink(f"{release}/up") == "../../../../outside"
    assert all("links" in page for page in site.pages())
