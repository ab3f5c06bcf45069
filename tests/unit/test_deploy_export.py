"""The export writes exactly the approved commit's tree, verified, whatever the
repository carries: replace refs, grafts, attributes, symlinks, crafted trees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine import git
from engine.plan import RefKind
from tests.unit.test_deploy_git_repo import commit, sh_git


@pytest.fixture
def mirror(tmp_path: Path) -> dict:
    work = tmp_path / "work"
    work.mkdir()
    sh_git(work, "init", "-q", "--initial-branch=master")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sh_git(tmp_path, "init", "-q", "--bare", str(workspace / git.MIRROR_DIR))
    return {"work": work, "ws": str(workspace), "git_dir": str(workspace / git.MIRROR_DIR), "tmp": tmp_path}


def _push(m: dict, *refspecs: str) -> None:
    sh_git(m["tmp"], "--git-dir", m["git_dir"], "fetch", "-q", str(m["work"]), *(refspecs or ("+refs/heads/*:refs/heads/*",)))


def _files(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_text()
    return out


def test_symlinks_are_deployed_as_links_and_never_followed(mirror: dict) -> None:
    work = mirror["work"]
    (work / "abs").symlink_to("/etc/passwd")
    (work / "up").symlink_to("../../../../outside")
    (work / "dir").mkdir()
    (work / "dir" / "rel").symlink_to("../index.html")
    sha = commit(work, {"index.html": "hi"}, "links")
    _push(mirror)
    dest = mirror["tmp"] / "build"
    git.export(mirror["ws"], sha, str(dest))
    assert _files(dest) == {
        "abs": "-> /etc/passwd", "dir/rel": "-> ../index.html", "index.html": "hi", "up": "-> ../../../../outside",
    }


def test_a_replace_ref_in_the_mirror_does_not_change_what_is_exported(mirror: dict) -> None:
    work = mirror["work"]
    approved = commit(work, {"index.html": "approved"}, "approved")
    sh_git(work, "checkout", "-q", "--orphan", "evil")
    evil = commit(work, {"index.html": "EVIL"}, "evil")
    sh_git(work, "replace", approved, evil)
    _push(mirror, "+refs/heads/*:refs/heads/*", "+refs/replace/*:refs/replace/*")
    # Plain git (replace objects honoured) would now show the evil content:
    shown = sh_git(mirror["tmp"], "--git-dir", mirror["git_dir"], "show", f"{approved}:index.html")
    assert shown == "EVIL"
    dest = mirror["tmp"] / "build"
    git.export(mirror["ws"], approved, str(dest))
    assert (dest / "index.html").read_text() == "approved"


def test_a_graft_file_cannot_make_a_foreign_commit_look_like_part_of_a_branch(mirror: dict) -> None:
    work = mirror["work"]
    tip = commit(work, {"index.html": "one"}, "one")
    sh_git(work, "checkout", "-q", "--orphan", "other")
    foreign = commit(work, {"index.html": "FOREIGN"}, "foreign")
    _push(mirror)
    info = Path(mirror["git_dir"]) / "info"
    info.mkdir(exist_ok=True)
    (info / "grafts").write_text(f"{tip} {foreign}\n")  # "tip's parent is foreign"
    # Plain git honours the graft and would accept the foreign commit as on master:
    plain = subprocess.run(["git", "--git-dir", mirror["git_dir"], "merge-base", "--is-ancestor", foreign, tip],
                           capture_output=True, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    assert plain.returncode == 0
    with pytest.raises(ValueError, match="not on branch"):
        git.resolve(mirror["ws"], RefKind.BRANCH, "master", foreign)


def test_repository_attributes_and_mirror_filters_change_nothing(mirror: dict) -> None:
    work = mirror["work"]
    files = {
        ".gitattributes": "secret.txt export-ignore\nversion.txt export-subst\n*.txt filter=evil\n",
        "secret.txt": "kept", "version.txt": "$Format:%H$", "crlf.txt": "a\nb\n",
    }
    sha = commit(work, files, "attrs")
    _push(mirror)
    marker = mirror["tmp"] / "filter-ran"
    with open(Path(mirror["git_dir"]) / "config", "a") as config:
        config.write(f'[filter "evil"]\n\tsmudge = "touch {marker}; cat"\n\trequired = true\n')
    dest = mirror["tmp"] / "build"
    git.export(mirror["ws"], sha, str(dest))
    assert _files(dest) == files
    assert not marker.exists()


def test_exported_files_keep_their_mode_and_get_a_time_from_their_content(mirror: dict) -> None:
    work = mirror["work"]
    commit(work, {"run.sh": "#!/bin/sh\n", "same.txt": "same"}, "one")
    os.chmod(work / "run.sh", 0o755)
    one = commit(work, {"changed.txt": "aaaa"}, "exec bit")
    two = commit(work, {"changed.txt": "bbbb"}, "same size, other content")  # same second, same size
    _push(mirror)
    a, b = mirror["tmp"] / "a", mirror["tmp"] / "b"
    git.export(mirror["ws"], one, str(a))
    git.export(mirror["ws"], two, str(b))
    assert os.stat(a / "run.sh").st_mode & 0o777 == 0o755 and os.stat(a / "same.txt").st_mode & 0o777 == 0o644
    assert os.stat(a / "same.txt").st_mtime == os.stat(b / "same.txt").st_mtime
    assert os.stat(a / "changed.txt").st_mtime != os.stat(b / "changed.txt").st_mtime


def test_tree_id_of_a_directory_matches_git(mirror: dict) -> None:
    work = mirror["work"]
    (work / "link").symlink_to("target")
    sha = commit(work, {"a.txt": "a", "d/b.txt": "b", "d-e.txt": "sorting", "d.txt": "x"}, "tree")
    expected = sh_git(work, "rev-parse", f"{sha}^{{tree}}")
    _push(mirror)
    dest = mirror["tmp"] / "build"
    assert git.export(mirror["ws"], sha, str(dest)) == expected
    assert git.tree_id(str(dest)) == expected
    (dest / "d" / "b.txt").write_text("tampered")
    assert git.tree_id(str(dest)) != expected


def test_an_export_that_does_not_match_the_commit_is_refused(mirror: dict, monkeypatch) -> None:
    sha = commit(mirror["work"], {"index.html": "real"}, "one")
    _push(mirror)
    real = git._cat_blobs

    def corrupt(*args, **kwargs):
        for data in real(*args, **kwargs):
            yield data + b"!"

    monkeypatch.setattr(git, "_cat_blobs", corrupt)
    with pytest.raises(git.GitError, match="do not match commit"):
        git.export(mirror["ws"], sha, str(mirror["tmp"] / "build"))


def _crafted_commit(m: dict, entries: list[tuple[str, str, str]]) -> str:
    """A commit whose tree holds ``entries`` (mode, name, blob text) as given,
    bypassing git's own checks, as a hostile repository could."""
    git_dir = m["git_dir"]

    def run(*args: str, data: bytes | None = None) -> str:
        env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
               "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@x"}
        return subprocess.run(["git", "--git-dir", git_dir, *args], input=data, capture_output=True,
                              env=env, check=True).stdout.decode().strip()

    body = b""
    for mode, name, text in entries:
        oid = run("hash-object", "-w", "--stdin", data=text.encode())
        body += mode.encode() + b" " + name.encode() + b"\0" + bytes.fromhex(oid)
    tree = run("hash-object", "-w", "-t", "tree", "--literally", "--stdin", data=body)
    return run("commit-tree", tree, "-m", "crafted")


@pytest.mark.parametrize("name", ["..", ".git", "."])
def test_a_crafted_tree_with_an_unsafe_name_is_refused(mirror: dict, name: str) -> None:
    sha = _crafted_commit(mirror, [("100644", name, "x")])
    dest = mirror["tmp"] / "build"
    with pytest.raises(git.GitError, match="unsafe path"):
        git.export(mirror["ws"], sha, str(dest))


def test_a_crafted_tree_cannot_write_through_its_own_symlink(mirror: dict) -> None:
    outside = mirror["tmp"] / "outside"
    outside.mkdir()
    # "a" as a symlink to outside, then "a" again as a directory holding a file.
    git_dir = mirror["git_dir"]
    sub = _crafted_commit(mirror, [("100644", "planted", "pwned")])
    sub_tree = sh_git(mirror["tmp"], "--git-dir", git_dir, "rev-parse", f"{sub}^{{tree}}")
    link_oid = subprocess.run(["git", "--git-dir", git_dir, "hash-object", "-w", "--stdin"],
                              input=str(outside).encode(), capture_output=True, check=True).stdout.decode().strip()
    body = b"120000 a\0" + bytes.fromhex(link_oid) + b"40000 a\0" + bytes.fromhex(sub_tree)
    tree = subprocess.run(["git", "--git-dir", git_dir, "hash-object", "-w", "-t", "tree", "--literally", "--stdin"],
                          input=body, capture_output=True, check=True).stdout.decode().strip()
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@x"}
    sha = subprocess.run(["git", "--git-dir", git_dir, "commit-tree", tree, "-m", "x"], capture_output=True,
                         env=env, check=True).stdout.decode().strip()
    with pytest.raises((git.GitError, OSError)):
        git.export(mirror["ws"], sha, str(mirror["tmp"] / "build"))
    assert list(outside.iterdir()) == []
