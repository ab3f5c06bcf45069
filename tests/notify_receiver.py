"""A real HTTP receiver on 127.0.0.1 (a thread) that checks each vendor's
signature the way the vendor does, written from the vendors' documentation
and not from Walle's code, and answers like the vendor would.

Paths name the vendor: /dingtalk/robot/send?access_token=KEY,
/feishu/open-apis/bot/v2/hook/KEY, /wecom/cgi-bin/webhook/send?key=KEY,
/slack/services/KEY, /webhook/KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

KEY = "robot-access-key-7f3a9c1e5b"
SECRET = "SEC-signing-secret-4b8d2f6a0c"
WEBHOOK_WINDOW = 300  # seconds; Walle's documented replay window


@dataclass
class Received:
    vendor: str
    path: str
    query: dict
    headers: dict
    body: bytes
    verified: bool
    problem: str = ""

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    host: str
    port: int
    key: str = KEY
    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    # Scripted answers, used up in order before the vendor's own: (status, body, delay).
    script: list[tuple[int, bytes, float]] = field(default_factory=list)

    def url(self, vendor: str) -> str:
        base = f"http://{self.host}:{self.port}"
        return {
            "dingtalk": f"{base}/dingtalk/robot/send?access_token={self.key}",
            "feishu": f"{base}/feishu/open-apis/bot/v2/hook/{self.key}",
            "wecom": f"{base}/wecom/cgi-bin/webhook/send?key={self.key}",
            "slack": f"{base}/slack/services/{self.key}",
            "webhook": f"{base}/webhook/{self.key}",
            "redirect": f"{base}/redirect/{self.key}",
        }[vendor]

    def wait(self, count: int = 1, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"received {len(self.received)} of {count} requests"
        return self.received


def _b64_hmac(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def check_dingtalk(r: Receiver, query: dict, headers: dict, body: bytes) -> str:
    # https://open.dingtalk.com/document/robots/customize-robot-security-settings
    if query.get("access_token") != r.key:
        return "access_token"
    ts = query.get("timestamp", "")
    if not ts.isdigit() or abs(time.time() * 1000 - int(ts)) > 3600_000:
        return "timestamp"
    expected = _b64_hmac(r.secret.encode(), f"{ts}\n{r.secret}".encode())
    return "" if hmac.compare_digest(query.get("sign", ""), expected) else "sign"


def check_feishu(r: Receiver, path: str, headers: dict, body: bytes) -> str:
    # https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot (signature check)
    if not path.endswith("/" + r.key):
        return "hook"
    data = json.loads(body)
    ts = data.get("timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 3600:
        return "timestamp"
    expected = _b64_hmac(f"{ts}\n{r.secret}".encode(), b"")
    return "" if hmac.compare_digest(data.get("sign", ""), expected) else "sign"


def check_webhook(r: Receiver, path: str, headers: dict, body: bytes) -> str:
    # Walle's generic scheme (docs/notifications.md), as a receiver should check it.
    ts = headers.get("x-walle-timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > WEBHOOK_WINDOW:
        return "timestamp"
    mac = hmac.new(r.secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return "" if hmac.compare_digest(headers.get("x-walle-signature", ""), f"sha256={mac}") else "signature"


def vendor_answer(r: Receiver, vendor: str, problem: str) -> tuple[int, bytes]:
    ok = not problem
    if vendor == "dingtalk":
        return 200, json.dumps({"errcode": 0 if ok else 310000, "errmsg": "ok" if ok else "sign not match"}).encode()
    if vendor == "wecom":
        return 200, json.dumps({"errcode": 0 if ok else 93000, "errmsg": "ok" if ok else "invalid webhook url"}).encode()
    if vendor == "feishu":
        return 200, json.dumps({"code": 0 if ok else 19021, "msg": "success" if ok else "sign match fail"}).encode()
    if vendor == "slack":
        return (200, b"ok") if ok else (404, b"no_service")
    return (204, b"") if ok else (401, problem.encode())


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        r = self.receiver
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self.rfile.read(int(headers.get("content-length", 0)))
        vendor = parts.path.split("/")[1]
        if vendor == "redirect":
            # Recorded before answering: the test reads it as soon as the client has the answer.
            r.received.append(Received(vendor, parts.path, query, headers, body, False, "redirect"))
            self.send_response(302)
            self.send_header("Location", r.url("webhook"))
            self.end_headers()
            return
        problem = {
            "dingtalk": lambda: check_dingtalk(r, query, headers, body),
            "feishu": lambda: check_feishu(r, parts.path, headers, body),
            "wecom": lambda: "" if query.get("key") == r.key else "key",
            "slack": lambda: "" if parts.path == f"/slack/services/{r.key}" else "path",
            "webhook": lambda: check_webhook(r, parts.path, headers, body),
        }[vendor]()
        r.received.append(Received(vendor, parts.path, query, headers, body, not problem, problem))
        status, answer, delay = r.script.pop(0) if r.script else (*vendor_answer(r, vendor, problem), 0.0)
        time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    handler = type("Handler", (_Handler,), {})  # one receiver per test, never shared
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state = Receiver("127.0.0.1", server.server_address[1])
    handler.receiver = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
