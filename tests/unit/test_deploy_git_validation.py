"""Repository URL, ref and commit validation (security.md T1-T4)."""

from __future__ import annotations

import subprocess

import git as gitpython
import pytest
from packaging.version import Version

from engine import git


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@127.0.0.10/srv/git/app.git",
        "ssh://git@git.example.com:2222/team/app.git",
        "ssh://git.example.com/app.git",
        "git@github.com:team/app.git",
        "git@host:/srv/git/app.git",
        "https://github.com/team/app.git",
    ],
)
def test_allowed_repository_urls(url: str) -> None:
    assert git.validate_repo_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "ssh://-oProxyCommand=touch%20/tmp/p/x",
        "ssh://git@host/x -oProxyCommand=id",
        "ssh://host:22/x?ProxyCommand=id",
        "file:///etc",
        "/srv/git/app.git",
        "../app.git",
        "http://169.254.169.254/",
        "git://example.com/app.git",
        "-u/tmp/x",
        "--upload-pack=touch /tmp/x",
        "git@-oProxyCommand=id:x",
        "host:path",  # scp-like without a user
        "https://user:token@github.com/app.git",
        "ssh://git:pw@host/app.git",
        "ssh://git@host",
        "ssh://git@host:99999/x",
        "https://host/a\nb",
        "",
    ],
)
def test_dangerous_or_unknown_repository_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        git.validate_repo_url(url)


def test_ssh_host_of_each_url_form() -> None:
    assert git.repo_ssh_host("ssh://git@127.0.0.10/srv/git/a.git") == ("127.0.0.10", 22)
    assert git.repo_ssh_host("ssh://git@h:2222/a.git") == ("h", 2222)
    assert git.repo_ssh_host("git@example.com:team/a.git") == ("example.com", 22)
    assert git.repo_ssh_host("https://example.com/a.git") is None


def test_gitpython_is_past_the_ext_url_fixes() -> None:
    # CVE-2022-24439 / CVE-2023-40267: older GitPython ran ext:: URLs.
    assert Version(gitpython.__version__) >= Version("3.1.32")


VALID_BUT_HOSTILE = ["main;touch${IFS}/tmp/pwned", "x$(id)", "a`id`b", "v1$(id)", "feature/a|b"]


@pytest.mark.parametrize("name", ["master", "feature/login", "v1.2.3", "release-2024_01", *VALID_BUT_HOSTILE])
def test_valid_ref_names_pass(name: str) -> None:
    # Hostile-looking names are legal git refs; they are safe because they only
    # ever travel as argv words and env values (see the integration tests).
    assert git.validate_ref_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-f",
        "--upload-pack=touch /tmp/x",
        "--upload-pack=x",
        "a b",
        "a\tb",
        "a\nb",
        "a..b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "/a",
        "a/",
        "a//b",
        "a.",
        ".a",
        "a/.b",
        "a.lock",
        "a/b.lock/c",
        "@",
        "a@{1}",
        "HEAD",
        "x$(touch /tmp/p)",
        "\x7f",
    ],
)
def test_invalid_ref_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        git.validate_ref_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "master",
        "a..b",
        "a b",
        "-f",
        ".a",
        "a.lock",
        "a/",
        "a//b",
        "@",
        "a@{1}",
        "x$(id)",
        "a~",
        "é",
        "a.",
        "main;touch${IFS}/tmp/pwned",
        "a`id`b",
        "a/b/c",
        "a\\b",
        "HEAD",
    ],
)
def test_ref_rules_never_accept_what_git_check_ref_format_rejects(name: str) -> None:
    git_ok = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True).returncode == 0
    try:
        ours = bool(git.validate_ref_name(name))
    except ValueError:
        ours = False
    assert not (ours and not git_ok), f"{name!r} accepted by us but rejected by git"


@pytest.mark.parametrize(
    "sha", ["abc;id", "HEAD~1", "HEAD", "abc123", "A" * 40, "g" * 40, "a" * 39, "a" * 41, "--all", "a" * 40 + "\n"]
)
def test_commits_must_be_full_lowercase_shas(sha: str) -> None:
    with pytest.raises(ValueError):
        git.validate_commit(sha)


def test_full_sha_is_accepted() -> None:
    assert git.validate_commit("0123456789abcdef0123456789abcdef01234567")
