"""The production install as shipped: the documented environment passes
`manage.py check --deploy` with no warning, the nginx site parses, and the
container files are consistent (CI builds the image only where Docker runs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
ENV_EXAMPLE = ROOT / "deploy/systemd/walle.env.example"


def documented_environment(data_dir: Path) -> dict[str, str]:
    """The example environment file, as systemd's EnvironmentFile reads it,
    with the data dir moved somewhere this test may write."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    values["WALLE_DATA_DIR"] = str(data_dir)
    return values


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # Only PATH from this process: no WALLE_* or DATABASE_URL of the test run
    # leaks in. The umask is the units' UMask=0077.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean, umask=0o077,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_documented_production_environment_passes_check_deploy_without_warnings(tmp_path):
    result = manage(documented_environment(tmp_path / "data"), "check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_without_the_production_variables_check_deploy_does_warn(tmp_path):
    # The test above must fail if the variables stop working: the same check
    # with the security variables left out reports exactly what they fix.
    env = {k: v for k, v in documented_environment(tmp_path / "data").items()
           if k not in {"WALLE_SSL_REDIRECT", "WALLE_HSTS_SECONDS", "WALLE_SECURE_COOKIES"}}
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output


def test_the_production_environment_trusts_the_proxy_headers_nginx_sets(tmp_path):
    env = documented_environment(tmp_path / "data")
    code = ("from django.conf import settings as s; "
            "print(s.SECURE_PROXY_SSL_HEADER, s.WALLE_PROXY_COUNT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)")
    result = manage(env, "shell", "--verbosity", "0", "-c", code)
    assert result.stdout.split() == ["('HTTP_X_FORWARDED_PROTO',", "'https')", "1", "True", "True"], result.stderr
    nginx = (ROOT / "deploy/nginx/walle.conf").read_text()
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx


def test_the_systemd_units_read_the_environment_file_and_run_as_the_walle_user():
    for unit in ("walle-web.service", "walle-worker.service"):
        text = (ROOT / "deploy/systemd" / unit).read_text()
        assert "EnvironmentFile=/etc/walle/walle.env" in text
        assert "User=walle" in text and "ReadWritePaths=/var/lib/walle" in text
    worker = (ROOT / "deploy/systemd/walle-worker.service").read_text()
    assert "manage.py qcluster" in worker
    assert not re.search(r"^RestrictNamespaces=", worker, re.M)  # bubblewrap needs namespaces


@pytest.mark.skipif(not (shutil.which("nginx", path="/usr/sbin:/usr/bin") and shutil.which("openssl")),
                    reason="nginx or openssl not installed (CI installs nginx-light)")
def test_the_nginx_site_is_valid_nginx_configuration(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-subj", "/CN=walle.example.com", "-days", "1"], check=True, capture_output=True)
    site = (ROOT / "deploy/nginx/walle.conf").read_text()
    site = (site.replace("/etc/ssl/walle/fullchain.pem", str(cert)).replace("/etc/ssl/walle/privkey.pem", str(key))
            .replace("/var/log/nginx/", f"{tmp_path}/"))
    (tmp_path / "walle.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(f"events {{}}\nhttp {{ include {tmp_path}/walle.conf; }}\n")
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-g", f"pid {tmp_path}/nginx.pid; error_log stderr;"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_dockerfile_installs_the_deploy_tools_and_drops_root():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    for package in ("bubblewrap", "rsync", "openssh-client", "git"):
        assert re.search(rf"apt-get install[^\n]*\b{package}\b", text)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "pip install --no-compile -r requirements.txt" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)  # no local secrets or database in the image


def test_the_compose_file_parses_and_references_what_exists():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "redis", "web", "worker", "migrate"} <= set(services)
    commands = {"qcluster", "migrate", "walle_init"}
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose.get("volumes", {}) or (ROOT / source).exists(), (name, volume)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        command = " ".join(service.get("command", []))
        for word in commands & set(re.findall(r"manage\.py (\w+)", command)):
            commands.discard(word)
    assert not commands, f"compose never runs: {commands}"
    env = services["worker"]["environment"]
    assert env["WALLE_REDIS_URL"].startswith("redis://redis:")
    assert env["DATABASE_URL"].startswith("postgres://")
