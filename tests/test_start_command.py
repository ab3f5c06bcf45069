"""`bin/start` as a new user runs it: the URL it prints answers and logs in."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from walleproj import bind

ROOT = Path(__file__).resolve().parent.parent


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _printed_urls(process: subprocess.Popen, deadline: float) -> list[str]:
    """Read bin/start's output until it has printed where to go."""
    urls: list[str] = []
    for line in process.stdout:
        urls += re.findall(r"^\s+(http://\S+)$", line)
        if urls and "Stop with Ctrl-C" in line:
            return urls
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"bin/start printed no URL to open (got {urls})")


def _get(opener, url: str, deadline: float, data: bytes | None = None):
    while True:
        try:
            return opener.open(url, data=data, timeout=10)
        except urllib.error.URLError as error:
            if isinstance(error, urllib.error.HTTPError) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)  # gunicorn is still starting


@pytest.fixture
def started(tmp_path):
    """bin/start on a loopback address other than 127.0.0.1, with no
    WALLE_ALLOWED_HOSTS set, in a fresh data dir."""
    address, port = "127.0.0.3", _free_port("127.0.0.3")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WALLE_", "DJANGO_")) and key not in ("DATABASE_URL",)}
    env |= {"WALLE_DATA_DIR": str(tmp_path / "data"), "WALLE_BIND": address, "WALLE_PORT": str(port),
            "WALLE_ADMIN_PASSWORD": "first-admin-pass-1", "WALLE_WORKERS": "1", "WALLE_WEB_WORKERS": "1"}
    process = subprocess.Popen([str(ROOT / "bin" / "start")], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_url_bin_start_prints_for_its_bind_address_serves_and_logs_in(started):
    deadline = time.monotonic() + 180
    urls = _printed_urls(started, deadline)
    assert urls[0].startswith("http://127.0.0.3:")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = _get(opener, urls[0] + "login/", deadline).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "admin",
                                   "password": "first-admin-pass-1"}).encode()
    request = urllib.request.Request(urls[0] + "login/", data=form, headers={"Referer": urls[0] + "login/"})
    answer = _get(opener, request, deadline)
    assert "/login/" not in answer.url  # the login went through: CSRF trusted this origin
    assert "Log out" in answer.read().decode()


def test_a_wildcard_bind_allows_the_machine_name_and_local_names():
    hosts = bind.bind_hosts("0.0.0.0")
    assert socket.gethostname() in hosts and "localhost" in hosts
    assert bind.bind_hosts("::1") == ["localhost", "127.0.0.1", "[::1]"]
    assert bind.trusted_origins("10.0.0.5", 8000)[-1] == "http://10.0.0.5:8000"
