"""/healthz says the web process answers; /readyz checks the database, the
broker, a live worker cluster, the data dir and the key-encryption key, names
each check, and tells an anonymous caller nothing secret."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django_q.conf import Conf

from tests.deploy_fixtures import wait_for
from walleproj import health

CHECK_NAMES = {"database", "broker", "cluster", "data_dir", "key_encryption_key"}


def readyz(client: Client) -> tuple[int, dict]:
    response = client.get("/readyz")
    return response.status_code, json.loads(response.content)


def test_healthz_answers_anonymously_without_touching_the_database(client):
    # No db fixture: pytest-django makes any query here raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_only_answers_get(client):
    assert client.post("/healthz").status_code == 405


def test_readyz_names_every_check_and_is_503_without_a_worker(db, client, monkeypatch):
    # A key prefix no cluster uses: with Redis, other sessions' workers on this
    # machine report under the shared one.
    monkeypatch.setattr(Conf, "Q_STAT", f"django_q:walle-none-{uuid.uuid4().hex}:cluster")
    status, body = readyz(client)
    assert status == 503
    assert body["status"] == "fail"
    assert set(body["checks"]) == CHECK_NAMES
    assert body["checks"]["cluster"]["ok"] is False
    assert "qcluster" in body["checks"]["cluster"]["detail"]
    # Everything else is fine on this machine: only the worker is missing.
    assert all(body["checks"][name]["ok"] for name in CHECK_NAMES - {"cluster"}), body


@pytest.mark.worker
def test_readyz_is_200_once_a_worker_cluster_reports(transactional_db, client, qcluster):
    # django-q2 saves the cluster's heartbeat every guard cycle (0.5 s).
    wait_for(lambda: qcluster.pid in {s.pid for s in health.live_clusters()}, timeout=30)
    status, body = readyz(client)
    assert status == 200 and body["status"] == "ok", body
    assert body["checks"]["cluster"]["ok"] is True
    assert body["checks"]["cluster"]["detail"].endswith(" live")


def test_readyz_fails_when_the_data_dir_is_not_writable(db, client, settings, tmp_path):
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the data dir should be")
    settings.DATA_DIR = not_a_dir
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["data_dir"]["ok"] is False


def test_readyz_leaves_nothing_behind_in_the_data_dir(db, client):
    before = set(django_settings.DATA_DIR.iterdir())
    readyz(client)
    assert set(django_settings.DATA_DIR.iterdir()) == before


def test_readyz_fails_when_the_key_file_is_gone(db, client, settings, tmp_path):
    settings.WALLE_KEY_ENCRYPTION_KEY_FILE = tmp_path / "key_encryption_key"  # never created
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["key_encryption_key"] == {"ok": False, "detail": "key file unreadable (FileNotFoundError)"}


def test_readyz_fails_when_the_key_file_no_longer_holds_the_running_key(db, client, settings, tmp_path):
    path = tmp_path / "key_encryption_key"
    path.write_text("a restored backup's other key")
    settings.WALLE_KEY_ENCRYPTION_KEY_FILE = path
    status, body = readyz(client)
    assert status == 503
    assert "changed since start" in body["checks"]["key_encryption_key"]["detail"]


def test_readyz_fails_on_a_key_that_is_not_a_fernet_key(db, client, settings):
    settings.WALLE_KEY_ENCRYPTION_KEY_FILE = None  # as when WALLE_KEY_ENCRYPTION_KEY is set
    settings.WALLE_KEY_ENCRYPTION_KEYS = ["not-a-key"]
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["key_encryption_key"] == {"ok": False, "detail": "not a valid Fernet key"}


def test_readyz_fails_when_the_redis_broker_is_unreachable(db, client, monkeypatch):
    # A real Redis client against a port nobody listens on.
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["broker"] == {"ok": False, "detail": "error: ConnectionError"}


def test_readyz_reveals_no_secrets_or_paths_when_checks_fail(db, client, settings, tmp_path, monkeypatch):
    secret_path = tmp_path / "s3cr3t-location"
    secret_path.write_text("x")
    settings.DATA_DIR = secret_path
    settings.WALLE_KEY_ENCRYPTION_KEY_FILE = secret_path / "key"
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://:hunter2-password@127.0.0.1:1/0")
    text = client.get("/readyz").content.decode()
    for secret in ("s3cr3t-location", "hunter2-password", str(tmp_path), django_settings.SECRET_KEY,
                   *django_settings.WALLE_KEY_ENCRYPTION_KEYS):
        assert secret not in text
