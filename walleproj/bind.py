"""Where `bin/start` listens, and the names a browser reaches it by.

Plain Python (no Django) so `bin/start` can print the same URLs that
settings.py allows: the address it prints must never answer 400.
"""

from __future__ import annotations

import socket

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def _as_host(address: str) -> str:
    """An address as it appears in a Host header: IPv6 in brackets."""
    address = address.strip()
    if ":" in address and not address.startswith("["):
        return f"[{address}]"
    return address


def _machine_names() -> list[str]:
    """This machine's names and the addresses they resolve to; what a
    wildcard bind is reached by from elsewhere."""
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:  # a host name that does not resolve: the names still count
        infos = []
    names += [_as_host(info[4][0]) for info in infos]
    return names


def bind_hosts(bind: str) -> list[str]:
    """The Host header values under which a server bound to ``bind`` is reached."""
    names = _machine_names() if bind.strip() in WILDCARDS else [_as_host(bind)]
    return list(dict.fromkeys([*LOCAL_NAMES, *names]))


def open_urls(bind: str, port: int) -> list[str]:
    """The URLs `bin/start` tells the user to open."""
    hosts = [_as_host(bind)] if bind.strip() not in WILDCARDS else [socket.gethostname(), "127.0.0.1"]
    return [f"http://{host}:{port}/" for host in hosts]


def trusted_origins(bind: str, port: int) -> list[str]:
    return [f"http://{host}:{port}" for host in bind_hosts(bind)]


if __name__ == "__main__":  # used by bin/start: print the URLs to open
    import os

    for url in open_urls(os.environ.get("WALLE_BIND", "127.0.0.1"), int(os.environ.get("WALLE_PORT", "8000"))):
        print(url)
