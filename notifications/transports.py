"""How each kind of channel is spoken to: building the signed request (plain
functions of their inputs), posting it, and reading the vendor's answer.

Vendor schemes:

* DingTalk: ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}")) added as query parameters.
* Feishu: ``timestamp`` (s) and ``sign`` = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}",
  msg=b"")) in the JSON body.
* WeCom, Slack: the URL carries the key; no signature.
* Generic webhook: ``X-Walle-Timestamp`` (s) and ``X-Walle-Signature:
  sha256=<hex HMAC-SHA256(key=secret, msg=f"{timestamp}.{body}")>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from urllib.parse import quote_plus

from django.core import mail

from .events import Message
from .models import Kind

MAX_REPLY = 64 * 1024
USER_AGENT = "Walle-Notifications/1"


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


class SendError(Exception):
    """A failed attempt; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, http_status: int | None = None, retry: bool = False) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry = retry


def _json(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **extra}


def _hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def markdown(message: Message) -> str:
    link = f"\n\n[#{message.ticket_id}]({message.url})" if message.ticket_id else ""
    return f"**{message.title}**\n\n" + "\n\n".join(message.lines()) + link


def dingtalk_request(url: str, secret: str, message: Message, now_ms: int) -> Request:
    sign = base64.b64encode(_hmac_sha256(secret.encode(), f"{now_ms}\n{secret}".encode())).decode()
    signed = f"{url}{'&' if '?' in url else '?'}timestamp={now_ms}&sign={quote_plus(sign)}"
    body = {"msgtype": "markdown", "markdown": {"title": message.title[:100], "text": markdown(message)}}
    return Request(signed, _json(body), _headers())


def feishu_request(url: str, secret: str, message: Message, now_s: int) -> Request:
    sign = base64.b64encode(_hmac_sha256(f"{now_s}\n{secret}".encode(), b"")).decode()
    body = {"timestamp": str(now_s), "sign": sign, "msg_type": "text", "content": {"text": message.as_text()}}
    return Request(url, _json(body), _headers())


def wecom_request(url: str, message: Message) -> Request:
    return Request(url, _json({"msgtype": "markdown", "markdown": {"content": markdown(message)}}), _headers())


def slack_escape(text: str) -> str:
    """Slack reads <...> as links and mentions (<!channel> pings everyone): a
    ticket title must stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_request(url: str, message: Message) -> Request:
    return Request(url, _json({"text": slack_escape(message.as_text())}), _headers())


def webhook_request(url: str, secret: str, message: Message, now_s: int, delivery_id: int) -> Request:
    body = _json({"delivery": delivery_id, "sent_at": now_s, **asdict(message)})
    signature = hmac.new(secret.encode(), f"{now_s}.".encode() + body, hashlib.sha256).hexdigest()
    return Request(url, body, _headers(**{
        "X-Walle-Event": message.event, "X-Walle-Delivery": str(delivery_id),
        "X-Walle-Timestamp": str(now_s), "X-Walle-Signature": f"sha256={signature}",
    }))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answers itself; a redirect is refused rather than followed
    (it could lead anywhere, and would turn the POST into a GET)."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(request: Request, timeout: float) -> tuple[int, bytes]:
    """POST and return (status, reply); SendError for anything but a 2xx."""
    outgoing = urllib.request.Request(request.url, data=request.body, headers=request.headers, method="POST")
    try:
        with _opener.open(outgoing, timeout=timeout) as reply:
            return reply.status, reply.read(MAX_REPLY)
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code == 429
        raise SendError(f"HTTP {exc.code}", http_status=exc.code, retry=retry) from None
    except TimeoutError:
        raise SendError(f"no answer within {timeout:g}s", retry=True) from None
    except urllib.error.URLError as exc:
        raise SendError(f"cannot connect: {exc.reason}", retry=True) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # resets, malformed URLs or replies
        raise SendError(f"{type(exc).__name__}: {exc}", retry=True) from None


def check_reply(kind: str, status: int, reply: bytes) -> None:
    """Robots answer HTTP 200 with an error code in the body when they refuse
    (bad signature, keyword missing, rate limit): that is a failure too."""
    if kind not in (Kind.DINGTALK, Kind.WECOM, Kind.FEISHU):
        return
    try:
        data = json.loads(reply or b"{}")
    except ValueError:
        raise SendError(f"unreadable reply from the {Kind(kind).label}", http_status=status) from None
    code = data.get("errcode", data.get("code", data.get("StatusCode", 0)))
    if code not in (0, None):
        text = str(data.get("errmsg") or data.get("msg") or data.get("StatusMessage") or "")[:200]
        raise SendError(f"refused by the robot: code {code} {text}".strip(), http_status=status)


def send_mail(recipients: list[str], message: Message) -> None:
    try:
        mail.send_mail(message.title[:200], message.as_text(), None, recipients, fail_silently=False)
    except (OSError, mail.BadHeaderError) as exc:  # smtplib errors are OSErrors
        raise SendError(f"mail: {type(exc).__name__}: {exc}", retry=True) from None
