"""Mirror lookups against a real local repository: refs, commits, export, compare.

The mirror is cloned here with plain git from a local path, because the engine's
own mirror() refuses file: URLs by design; fetching over ssh is covered by the
integration tests against the real git server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine import git
from engine.plan import RefKind

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}
HOSTILE_BRANCH = "main;touch${IFS}/tmp/walle-unit-pwned"


def sh_git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    sh_git(work, "add", "-A")
    sh_git(work, "commit", "-q", "-m", message)
    return sh_git(work, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> dict:
    """A workspace whose mirror holds master (3 commits), a side branch, tags."""
    work = tmp_path / "work"
    work.mkdir()
    sh_git(work, "init", "-q", "--initial-branch=master")
    c1 = commit(work, {"index.html": "v1", "sub/a.txt": "a"}, "first")
    c2 = commit(work, {"index.html": "v2"}, "second")
    sh_git(work, "tag", "v2")
    sh_git(work, "tag", "-a", "-m", "annotated", "v2-annotated")
    sh_git(work, "checkout", "-q", "-b", "side")
    side = commit(work, {"side.txt": "s"}, "side work")
    sh_git(work, "checkout", "-q", "master")
    c3 = commit(work, {"index.html": "v3", "new.txt": "n"}, "third")
    os.remove(work / "sub" / "a.txt")
    c4 = commit(work, {}, "remove a")
    sh_git(work, "branch", HOSTILE_BRANCH, c2)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sh_git(tmp_path, "clone", "-q", "--mirror", str(work), str(workspace / git.MIRROR_DIR))
    return {"ws": str(workspace), "c1": c1, "c2": c2, "c3": c3, "c4": c4, "side": side, "tmp": tmp_path}


def test_list_refs_shows_branches_and_tags(repo: dict) -> None:
    refs = git.list_refs(repo["ws"])
    assert refs["branches"] == sorted(["master", "side", HOSTILE_BRANCH])
    assert set(refs["tags"]) == {"v2", "v2-annotated"}


def test_resolve_branch_tip_and_tags_to_full_shas(repo: dict) -> None:
    assert git.resolve(repo["ws"], RefKind.BRANCH, "master") == repo["c4"]
    assert git.resolve(repo["ws"], RefKind.TAG, "v2") == repo["c2"]
    assert git.resolve(repo["ws"], RefKind.TAG, "v2-annotated") == repo["c2"]  # peeled to the commit


def test_resolve_a_commit_on_the_branch(repo: dict) -> None:
    assert git.resolve(repo["ws"], RefKind.BRANCH, "master", repo["c2"]) == repo["c2"]


def test_commit_not_reachable_from_the_ref_is_refused(repo: dict) -> None:
    with pytest.raises(ValueError, match="is not on branch"):
        git.resolve(repo["ws"], RefKind.BRANCH, "master", repo["side"])
    with pytest.raises(ValueError, match="is not on tag"):
        git.resolve(repo["ws"], RefKind.TAG, "v2", repo["c3"])


def test_unknown_commit_is_refused(repo: dict) -> None:
    with pytest.raises(ValueError):
        git.resolve(repo["ws"], RefKind.BRANCH, "master", "0" * 40)


@pytest.mark.parametrize("commit", ["HEAD~1", "abc;id", "--all", "master"])
def test_commit_expressions_are_refused(repo: dict, commit: str) -> None:
    with pytest.raises(ValueError):
        git.resolve(repo["ws"], RefKind.BRANCH, "master", commit)


@pytest.mark.parametrize(
    "ref", ["maste", "refs/heads/master", "heads/master", "master~1", "--all", "-f", "mast*", "v2"]
)
def test_ref_must_match_an_existing_branch_exactly(repo: dict, ref: str) -> None:
    with pytest.raises(ValueError):
        git.resolve(repo["ws"], RefKind.BRANCH, ref)


def test_branch_is_not_found_as_tag(repo: dict) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        git.resolve(repo["ws"], RefKind.TAG, "master")


def test_a_hostile_but_existing_branch_resolves_without_running_anything(repo: dict) -> None:
    marker = Path("/tmp/walle-unit-pwned")
    marker.unlink(missing_ok=True)
    assert git.resolve(repo["ws"], RefKind.BRANCH, HOSTILE_BRANCH) == repo["c2"]
    commits = git.recent_commits(repo["ws"], RefKind.BRANCH, HOSTILE_BRANCH)
    assert [c["sha"] for c in commits] == [repo["c2"], repo["c1"]]
    assert not marker.exists()


def test_recent_commits_newest_first_with_details(repo: dict) -> None:
    commits = git.recent_commits(repo["ws"], RefKind.BRANCH, "master", limit=2)
    assert [c["sha"] for c in commits] == [repo["c4"], repo["c3"]]
    assert commits[0]["message"] == "remove a"
    assert commits[0]["author"] == "T"
    assert commits[0]["short"] == repo["c4"][: len(commits[0]["short"])]
    assert commits[0]["date"][:2] == "20" and "T" in commits[0]["date"]


def test_export_writes_exactly_the_commit_tree_without_git(repo: dict) -> None:
    dest = repo["tmp"] / "build"
    git.export(repo["ws"], repo["c2"], str(dest))
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["index.html", "sub/a.txt"]
    assert (dest / "index.html").read_text() == "v2"
    assert not (dest / ".git").exists()


def test_export_refuses_an_existing_directory(repo: dict) -> None:
    dest = repo["tmp"] / "exists"
    dest.mkdir()
    with pytest.raises(FileExistsError):
        git.export(repo["ws"], repo["c2"], str(dest))


def test_export_needs_a_full_sha(repo: dict) -> None:
    with pytest.raises(ValueError):
        git.export(repo["ws"], "master", str(repo["tmp"] / "b"))


def test_compare_lists_commits_and_changed_files(repo: dict) -> None:
    diff = git.compare(repo["ws"], repo["c2"], repo["c4"])
    assert [c["message"] for c in diff["commits"]] == ["remove a", "third"]
    assert sorted(diff["files"]) == [("A", "new.txt"), ("D", "sub/a.txt"), ("M", "index.html")]
    assert diff["behind"] == []


def test_compare_reports_commits_an_older_target_would_take_away(repo: dict) -> None:
    diff = git.compare(repo["ws"], repo["c4"], repo["c2"])
    assert diff["commits"] == []
    assert [c["message"] for c in diff["behind"]] == ["remove a", "third"]


def test_compare_refuses_non_shas(repo: dict) -> None:
    with pytest.raises(ValueError):
        git.compare(repo["ws"], "master", repo["c4"])
