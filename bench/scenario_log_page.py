"""What one log page costs the web process, with nothing else running: the
API's /log/ for pages of 10 to 2000 lines, in this process (Django test
client, no network). Run: .venv/bin/python -m pytest bench/scenario_log_page.py -q -s -p no:cacheprovider"""

from __future__ import annotations

import statistics
import time

from accounts.models import ApiToken
from releases.models import DeployRun, LogLine, Ticket
from tests import helpers

ROUNDS = 20


def test_log_page_cost(world, client):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.SUCCEEDED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED)
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=n, host="127.0.0.11:22", stage="pre_release", stream="stdout", text=f"line {n} " * 6)
        for n in range(1, 2001)
    )
    _, raw = ApiToken.issue(world.users["developer"], "bench")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    print()
    for lines in (10, 100, 500, 2000):
        url = f"/api/tickets/{ticket.pk}/log/?after=0&limit={lines}"
        assert client.get(url, **auth).status_code == 200  # warm
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            response = client.get(url, **auth)
            times.append(time.perf_counter() - started)
            assert len(response.json()["lines"]) == lines
        median = statistics.median(times)
        print(f"log page of {lines:4d} lines: median {median * 1000:6.1f} ms ({median / lines * 1e6:5.0f} µs/line)")
