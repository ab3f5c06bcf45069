"""The incremental export: a workspace cache brought from the last exported
tree to the next by what changed, copied (never linked) to a fresh, verified
build dir; and the content-derived times given to what build hooks write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine import git, stamps
from tests.unit import test_deploy_export
from tests.unit.test_deploy_export import _files, _push
from tests.unit.test_deploy_git_repo import commit, sh_git

mirror = test_deploy_export.mirror  # the same fixture: a workspace whose mirror a work repo pushes to


def _export(m: dict, sha: str, name: str) -> tuple[Path, int]:
    dest = m["tmp"] / name
    tree, written = git.export_incremental(m["ws"], sha, str(dest))
    assert tree == sh_git(m["work"], "rev-parse", f"{sha}^{{tree}}")
    return dest, written


def _plain(m: dict, sha: str, name: str) -> Path:
    dest = m["tmp"] / name
    git.export(m["ws"], sha, str(dest))
    return dest


def _stat_view(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_mode, int(p.lstat().st_mtime)) for p in root.rglob("*")}


def test_a_second_export_writes_only_what_changed_and_equals_a_full_export(mirror: dict) -> None:
    work = mirror["work"]
    files = {f"src/f{n}.txt": f"file {n}\n" for n in range(50)}
    one = commit(work, {**files, "a/deep/x.txt": "x", "gone/y.txt": "y", "becomes_dir": "file"}, "one")
    (work / "gone" / "y.txt").unlink()
    (work / "becomes_dir").unlink()
    (work / "a" / "deep" / "x.txt").unlink()
    (work / "a" / "deep").rmdir()
    (work / "a" / "deep").write_text("now a file")  # a directory becomes a file
    (work / "link").symlink_to("src/f1.txt")
    two = commit(work, {"src/f3.txt": "changed\n", "becomes_dir/inner.txt": "inside"}, "two")
    _push(mirror)
    first, written_first = _export(mirror, one, "b1")
    second, written_second = _export(mirror, two, "b2")
    assert written_first == 53
    # f3 changed; a/deep, becomes_dir/inner.txt and link are new.
    assert written_second == 4
    full = _plain(mirror, two, "full")
    assert _files(second) == _files(full)
    assert _stat_view(second) == _stat_view(full)  # same modes, same content-derived times
    assert _files(first) == _files(_plain(mirror, one, "full1"))


def test_hooks_changing_the_build_dir_never_change_the_cache(mirror: dict) -> None:
    sha = commit(mirror["work"], {"index.html": "approved"}, "one")
    _push(mirror)
    build, _ = _export(mirror, sha, "b1")
    assert (build / "index.html").stat().st_nlink == 1  # a copy, not a hard link into the cache
    (build / "index.html").write_text("changed by a hook")
    again, written = _export(mirror, sha, "b2")
    assert written == 0
    assert (again / "index.html").read_text() == "approved"


def test_a_damaged_cache_is_rebuilt_and_the_build_dir_still_verified(mirror: dict) -> None:
    work = mirror["work"]
    one = commit(work, {"index.html": "one", "other.txt": "o"}, "one")
    two = commit(work, {"index.html": "two"}, "two")
    _push(mirror)
    _export(mirror, one, "b1")
    cached = Path(mirror["ws"]) / git.EXPORT_CACHE_DIR / "tree" / "other.txt"
    cached.write_text("tampered")  # unchanged between the commits, so not rewritten by the diff
    build, written = _export(mirror, two, "b2")
    assert written == 2  # the verification failed, the cache was written from scratch
    assert _files(build) == {"index.html": "two", "other.txt": "o"}


def test_an_interrupted_cache_update_is_never_taken_as_complete(mirror: dict) -> None:
    sha = commit(mirror["work"], {"index.html": "one"}, "one")
    _push(mirror)
    _export(mirror, sha, "b1")
    cache = Path(mirror["ws"]) / git.EXPORT_CACHE_DIR
    (cache / "tree-id").unlink()  # what a crash between update and verification leaves
    shutil.rmtree(cache / "tree")
    (cache / "tree").mkdir()
    build, written = _export(mirror, sha, "b2")
    assert written == 1 and _files(build) == {"index.html": "one"}


def test_files_hooks_write_with_a_fixed_time_get_a_time_from_their_content(tmp_path: Path) -> None:
    builds = []
    for text in ("aaaa", "bbbb", "aaaa"):
        build = tmp_path / f"build{len(builds)}"
        build.mkdir()
        (build / "exported.txt").write_text("from git")
        os.utime(build / "exported.txt", (git.blob_mtime("0" * 40),) * 2)
        before = stamps.snapshot(str(build))
        (build / "vendor").mkdir()
        (build / "vendor" / "pkg.js").write_text(text)  # same size in every build
        os.utime(build / "vendor" / "pkg.js", (499_162_800, 499_162_800))  # npm's 1985
        assert stamps.stamp_changed(str(build), before) == 1
        builds.append(build)
    times = [os.stat(b / "vendor" / "pkg.js").st_mtime for b in builds]
    assert times[0] != times[1] and times[0] == times[2]
    assert all(os.stat(b / "exported.txt").st_mtime == git.blob_mtime("0" * 40) for b in builds)


def test_an_exported_file_a_hook_rewrote_and_set_back_is_stamped_again(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("original")
    os.utime(tmp_path / "app.js", (1_000_000_000, 1_000_000_000))
    before = stamps.snapshot(str(tmp_path))
    (tmp_path / "app.js").write_text("minified")  # same size
    os.utime(tmp_path / "app.js", (1_000_000_000, 1_000_000_000))  # and the old time
    assert stamps.stamp_changed(str(tmp_path), before) == 1
    assert os.stat(tmp_path / "app.js").st_mtime == stamps.content_mtime(str(tmp_path / "app.js")) != 1_000_000_000


def test_symlinks_written_by_hooks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.utime(outside, (5, 5))
    build = tmp_path / "build"
    build.mkdir()
    (build / "link").symlink_to(outside)
    assert stamps.stamp_changed(str(build), {}) == 0
    assert os.stat(outside).st_mtime == 5


@pytest.mark.parametrize("size", [0, 3 * (1 << 20) + 5])
def test_a_content_time_is_the_export_time_of_the_same_blob(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    oid = sh_git(tmp_path, "hash-object", "f")
    assert stamps.content_mtime(str(tmp_path / "f")) == git.blob_mtime(oid)


def test_without_hooks_the_cache_itself_is_verified_and_handed_out(mirror: dict) -> None:
    work = mirror["work"]
    one = commit(work, {"index.html": "one", "other.txt": "o"}, "one")
    two = commit(work, {"index.html": "two"}, "two")
    _push(mirror)
    with git.export_cache_lock(mirror["ws"]):
        tree, written, path = git.export_in_place(mirror["ws"], one)
    assert written == 2 and tree == sh_git(work, "rev-parse", f"{one}^{{tree}}")
    assert _files(Path(path)) == {"index.html": "one", "other.txt": "o"}
    (Path(path) / "other.txt").write_text("tampered")  # not changed by the next commit
    with git.export_cache_lock(mirror["ws"]):
        _, written, path = git.export_in_place(mirror["ws"], two)
    assert written == 2  # the check failed, so the cache was written again from scratch
    assert _files(Path(path)) == {"index.html": "two", "other.txt": "o"}
