"""What a worker killed mid-deploy leaves behind is cleaned up: decrypted keys
at once by the reaper, the build dir and the half-copied release dirs on the
targets by the next deploy, and the console says the run was interrupted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from engine import runtime
from engine.ssh import KEY_DIR_PREFIX
from releases import tasks, workflow
from releases.models import DeployRun, Release
from tests.deploy_fixtures import V2_TEXT, deploy_now, open_approved_ticket, wait_for

pytestmark = [pytest.mark.sshd, pytest.mark.worker]


@pytest.fixture
def short_lease(settings):
    settings.WALLE_LOCK_LEASE = 4
    settings.WALLE_LOCK_HEARTBEAT = 1


def _key_dirs() -> set[str]:
    return {name for name in os.listdir(runtime.key_root()) if name.startswith(KEY_DIR_PREFIX)}


def test_a_worker_killed_while_copying_leaves_nothing_behind(short_lease, site, qcluster):
    before = _key_dirs()  # other live processes on this machine may hold some
    site.project.post_deploy = "head -c 150M /dev/urandom > big.bin"
    site.project.keep_releases = 2
    site.project.save()
    ticket = open_approved_ticket(site, "v1")
    run = workflow.deploy(site.users["developer"], ticket)
    wait_for(lambda: run.log_lines.filter(stage="transfer", text__startswith="$ rsync").exists(),
             timeout=120, interval=0.05)
    os.killpg(qcluster.pid, signal.SIGKILL)  # mid-copy: key files and a half release on disk
    run.refresh_from_db()
    build = Path(site.project.effective_workspace) / "builds" / run.release_name
    library = site.project.effective_release_library
    left = _key_dirs() - before
    assert left, "the copy was expected to hold a key file when the worker died"
    assert build.exists()
    assert any(t.data_path(f"{library}/{run.release_name}").exists() for t in site.targets)

    # At once, without waiting for the lease: as soon as the killed processes are gone.
    removed: set[str] = set()

    def swept() -> bool:
        removed.update(os.path.basename(path) for path in tasks.remove_dead_workers_files())
        return left <= removed

    wait_for(swept, timeout=10, interval=0.2)
    assert not left & _key_dirs()
    time.sleep(5)
    assert tasks.reap_stale_runs() == 1
    run.refresh_from_db()
    assert run.status == DeployRun.Status.FAILED
    assert run.log_lines.filter(text__icontains="interrupted").exists()  # said on the console
    assert not build.exists() and not Path(str(build) + ".home").exists()

    site.project.post_deploy = ""
    site.project.save()
    for label in ("v2", "v3"):
        site.push(label, f"{V2_TEXT} {label}")
        done = deploy_now(site.users["developer"], open_approved_ticket(site, label))
        assert done.status == DeployRun.Status.SUCCEEDED, done.error
    for target in site.targets:
        on_disk = sorted(p.name for p in target.data_path(library).iterdir())
        assert run.release_name not in on_disk  # the interrupted run's half release is gone
        assert len(on_disk) == 2  # keep-N counted only real releases
    assert not Release.objects.filter(name=run.release_name, removed_at__isnull=True).exists()
