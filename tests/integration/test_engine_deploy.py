"""The deploy engine against real hosts: releases, rollback, keep-N, excludes, hooks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine.plan import Hooks, HostState, Stage, Stream
from tests.infra.hosts import GitServer, TargetHost
from tests.integration.test_engine_support import LIBRARY, WEBROOT, Engine, current_release, releases_on

pytestmark = pytest.mark.sshd


@pytest.fixture
def engine(hosts: list[TargetHost], git_server: GitServer, tmp_path, request: pytest.FixtureRequest) -> Engine:
    return Engine(hosts, git_server, tmp_path, request.node.name)


def test_deploy_v1_then_v2_then_roll_back_to_v1_everywhere(engine: Engine) -> None:
    sha1 = engine.commit({"index.html": "v1\n"}, "v1")
    first = engine.deploy()
    assert first.ok, first.error
    assert first.commit == sha1
    assert [h.state for h in first.hosts] == [HostState.DONE] * 3
    assert all(host.http_get("/") == "v1\n" for host in engine.hosts)
    assert all(host.readlink(WEBROOT) == f"{LIBRARY}/{first.release_name}" for host in engine.hosts)

    sha2 = engine.commit({"index.html": "v2\n"}, "v2")
    second = engine.deploy()
    assert second.ok, second.error
    assert second.commit == sha2
    assert all(host.http_get("/") == "v2\n" for host in engine.hosts)
    assert {(h.previous_release, h.release) for h in second.hosts} == {(first.release_name, second.release_name)}

    back = engine.rollback({host: first.release_name for host in engine.hosts}, commit=sha1)
    assert back.ok, back.error
    assert all(host.http_get("/") == "v1\n" for host in engine.hosts)
    assert all(current_release(host) == first.release_name for host in engine.hosts)
    assert {(h.previous_release, h.release) for h in back.hosts} == {(second.release_name, first.release_name)}
    # The rolled-back-from release stays on disk for a roll forward.
    assert all(second.release_name in releases_on(host) for host in engine.hosts)


def test_deploy_a_tag_and_a_given_commit(engine: Engine) -> None:
    old = engine.commit({"index.html": "old\n"}, "old", tag="v1.0")
    engine.commit({"index.html": "new\n"}, "new")
    by_tag = engine.deploy(ref_kind="tag", ref="v1.0")
    assert by_tag.ok and by_tag.commit == old
    assert engine.hosts[0].http_get("/") == "old\n"
    by_commit = engine.deploy(commit=old)
    assert by_commit.ok and by_commit.commit == old


def test_unknown_branch_fails_before_any_host_is_touched(engine: Engine) -> None:
    engine.commit({"index.html": "v1\n"})
    outcome = engine.deploy(ref="no-such-branch")
    assert not outcome.ok and "does not exist" in outcome.error
    assert all(releases_on(host) == [] for host in engine.hosts)


def test_keep_n_removes_only_old_walle_releases(engine: Engine) -> None:
    engine.commit({"index.html": "v\n"})
    host = engine.hosts[0]
    foreign = ["shared", "20200101-000000-1.bak", "backup"]
    for name in foreign:
        host.data_path(f"{LIBRARY}/{name}").mkdir()
    names = []
    for _ in range(5):
        outcome = engine.deploy(keep_releases=2)
        assert outcome.ok, outcome.error
        names.append(outcome.release_name)
    for each in engine.hosts:
        ours = [n for n in releases_on(each) if n not in foreign]
        assert ours == sorted(names[-2:])
    assert set(foreign) <= set(releases_on(host))


def test_keep_n_never_removes_the_previous_release(engine: Engine) -> None:
    engine.commit({"index.html": "v\n"})
    names = [engine.deploy(keep_releases=5).release_name for _ in range(3)]
    # Roll back to the oldest, then deploy with keep=1: current and previous survive.
    assert engine.rollback({host: names[0] for host in engine.hosts}).ok
    latest = engine.deploy(keep_releases=1)
    assert latest.ok, latest.error
    for host in engine.hosts:
        assert releases_on(host) == sorted([names[0], latest.release_name])


def test_excluded_files_and_git_metadata_are_not_deployed(engine: Engine) -> None:
    engine.commit(
        {"index.html": "v\n", "secret.env": "PASSWORD=x", "logs/app.log": "l", "docs/a.md": "a", "keep/me.txt": "k"}
    )
    outcome = engine.deploy(
        excludes=("*.env", "logs/", "docs/a.md", "x; touch /tmp/walle-engine-excl", "--delete-after"),
        hooks=Hooks(post_deploy=("mkdir -p .git sub/.git && echo x > .git/config && echo y > sub/.git/x",)),
    )
    assert outcome.ok, outcome.error
    for host in engine.hosts:
        release = host.data_path(f"{LIBRARY}/{outcome.release_name}")
        files = sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file())
        assert files == ["index.html", "keep/me.txt"]
    assert not Path("/tmp/walle-engine-excl").exists()


def test_partial_host_selection_leaves_other_hosts_alone(engine: Engine) -> None:
    engine.commit({"index.html": "v1\n"})
    chosen = engine.hosts[:2]
    outcome = engine.deploy(targets=engine.targets(chosen))
    assert outcome.ok, outcome.error
    assert [h.name for h in outcome.hosts] == [h.name for h in chosen]
    assert all(host.http_get("/") == "v1\n" for host in chosen)
    assert current_release(engine.hosts[2]) == "" and releases_on(engine.hosts[2]) == []


def test_deploy_to_a_host_on_a_non_standard_ssh_port(engine: Engine, extra_host: TargetHost) -> None:
    extra_host.reset()
    extra_host.ensure_running()
    engine.commit({"index.html": "port\n"})
    outcome = engine.deploy(targets=engine.targets([engine.hosts[0], extra_host]))
    assert outcome.ok, outcome.error
    assert extra_host.http_get("/") == "port\n"
    assert any(h == "127.0.0.14:2214" for h, *_ in engine.lines)


def test_transfer_links_against_the_current_release_without_reusing_changed_files(engine: Engine) -> None:
    # Two commits in the same second: git archive gives both index.html files
    # the same size and mtime. rsync's link-dest must still ship the new one.
    first_sha = engine.commit({"big.txt": "same\n" * 1000, "index.html": "v1\n"})
    engine.commit({"index.html": "v2\n"})
    first = engine.deploy(commit=first_sha)
    second = engine.deploy()
    assert first.ok and second.ok
    assert all(host.http_get("/") == "v2\n" for host in engine.hosts)
    assert any(
        f"--link-dest={LIBRARY}/{first.release_name}" in text
        for text in engine.texts(stage=Stage.TRANSFER, stream=Stream.INFO)
    )


def test_hook_output_with_a_fixed_time_and_size_is_never_reused_from_the_previous_release(engine: Engine) -> None:
    # npm unpacks with a fixed 1985 mtime; SOURCE_DATE_EPOCH builds stamp a
    # constant: the build's output changes, its size and mtime do not. Without
    # --checksum, rsync would hard-link the old file from the current release.
    build = Hooks(post_deploy=('printf "%s" "${WALLE_COMMIT:0:8}" > built.txt && touch -d @499162800 built.txt',))
    first_sha = engine.commit({"index.html": "v1\n"})
    first = engine.deploy(hooks=build)
    second_sha = engine.commit({"index.html": "v2\n"})
    second = engine.deploy(hooks=build)
    assert first.ok and second.ok, (first.error, second.error)
    assert all(host.http_get("/built.txt") == second_sha[:8] for host in engine.hosts)
    assert first_sha[:8] != second_sha[:8]
    release = engine.hosts[0].data_path(f"{LIBRARY}/{second.release_name}/index.html")
    assert release.stat().st_nlink == 1  # changed by the commit: sent, not linked
    same = engine.deploy(hooks=build)  # same commit again: everything is linked, nothing sent
    assert same.ok, same.error
    built = engine.hosts[0].data_path(f"{LIBRARY}/{same.release_name}/built.txt")
    assert built.read_text() == second_sha[:8] and built.stat().st_nlink > 1


def test_the_copy_is_compressed_unless_the_plan_turns_it_off(engine: Engine) -> None:
    engine.commit({"index.html": "zstd\n" * 100})
    compressed = engine.deploy()
    plain = engine.deploy(compress=False)
    assert compressed.ok and plain.ok, (compressed.error, plain.error)
    copies = [t for t in engine.texts(stage=Stage.TRANSFER, stream=Stream.INFO) if t.startswith("$ rsync ")]
    assert len(copies) == 6
    assert all("--compress" in text.split() for text in copies[:3])
    assert not any("--compress" in text.split() for text in copies[3:])
    assert all(host.http_get("/") == "zstd\n" * 100 for host in engine.hosts)


def test_the_webroot_never_disappears_during_switches(engine: Engine) -> None:
    # security.md T22: ln to a temporary name + mv -T is one rename(2); a reader
    # hammering the site and the link never sees ENOENT or a 404.
    engine.commit({"index.html": "v0\n"})
    assert engine.deploy().ok
    host = engine.hosts[0]
    link = host.data_path(WEBROOT)
    seen: set[str] = set()
    errors: list[str] = []
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                os.readlink(link)
                seen.add(host.http_get("/"))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                errors.append(repr(exc))

    reader = threading.Thread(target=hammer)
    reader.start()
    try:
        for version in range(1, 4):
            engine.commit({"index.html": f"v{version}\n"})
            assert engine.deploy().ok
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert "v3\n" in seen and seen <= {"v0\n", "v1\n", "v2\n", "v3\n"}
