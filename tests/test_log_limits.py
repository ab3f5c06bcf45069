"""Log volume is bounded: what one run stores (with one marker saying what was
cut, and still how the run ended), what the ticket page renders, and what one
JSON or API page returns."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from engine.plan import HostResult, HostState, Secret, Stage, Stream
from releases import runlog
from releases.models import DeployRun, LogLine, RunHost, Ticket
from releases.recorder import Recorder
from releases.runlog import RunLog

from . import helpers

S = Ticket.Status


@pytest.fixture
def run(transactional_db, world) -> DeployRun:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    return DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING)


def stored(run: DeployRun) -> list[tuple[int, str, str, str]]:
    return list(run.log_lines.order_by("seq").values_list("seq", "stage", "stream", "text"))


def test_a_flood_stops_at_the_line_cap_with_one_marker_and_the_ending_still_stored(run, settings):
    settings.WALLE_LOG_MAX_LINES = 100
    log = RunLog(run, on_host=Recorder(run).host)
    for n in range(5000):
        log("127.0.0.11", Stage.PRE_DEPLOY, Stream.STDOUT, f"build line {n}")
    log("127.0.0.11", Stage.PRE_DEPLOY, Stream.ERROR, "pre_deploy failed with exit status 2")
    log("", Stage.FINISH, Stream.ERROR, "failed: pre_deploy failed")
    log.flush()
    log.close()
    rows = stored(run)
    assert len(rows) <= 100 + 1
    markers = [r for r in rows if r[3].startswith("[log limit]")]
    assert len(markers) == 1
    marker = markers[0]
    kept = [r for r in rows if r[3].startswith("build line")]
    cut = 5000 - len(kept)
    assert f"{cut:,} lines" in marker[3] and "100 lines" in marker[3]
    assert kept[-1][0] < marker[0]  # the marker sits where the gap starts
    assert rows[-2][2:] == ("error", "pre_deploy failed with exit status 2")  # how it ended, after the gap
    assert rows[-1][1:] == ("finish", "error", "failed: pre_deploy failed")
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))


def test_the_byte_cap_holds_and_the_marker_says_how_many_bytes_were_cut(run, settings):
    settings.WALLE_LOG_MAX_BYTES = 20_000
    log = RunLog(run, on_host=Recorder(run).host)
    for _ in range(1000):
        log("127.0.0.11", Stage.TRANSFER, Stream.STDOUT, "x" * 99)
    log.note(Stage.FINISH, Stream.INFO, "succeeded")
    log.flush()
    log.close()
    rows = stored(run)
    marker = next(r for r in rows if r[3].startswith("[log limit]"))
    text_bytes = sum(len(r[3].encode()) for r in rows if r is not marker)
    assert text_bytes <= 20_000
    cut = sum(1 for _ in range(1000)) - sum(1 for r in rows if r[3] == "x" * 99)
    assert f"{cut:,} lines ({cut * 99 / 1024:,.1f} KiB)" in marker[3]
    assert rows[-1][1:] == ("finish", "info", "succeeded")


def test_lines_that_say_how_the_run_ended_are_bounded_too(run, settings):
    settings.WALLE_LOG_MAX_LINES = 50
    log = RunLog(run, on_host=Recorder(run).host)
    for n in range(1000):
        log("127.0.0.11", Stage.SWITCH, Stream.ERROR, f"error {n}")
    log.flush()
    log.close()
    assert run.log_lines.count() <= 50 + 1


def test_host_states_are_recorded_after_the_cap(run, settings, world):
    settings.WALLE_LOG_MAX_LINES = 20
    host = world.project.hosts.get()
    RunHost.objects.create(run=run, host=host)
    log = RunLog(run, on_host=Recorder(run).host)
    for n in range(500):
        log(host.endpoint, Stage.TRANSFER, Stream.STDOUT, f"sent file {n}")
    log.host_result(HostResult(host.pk, host.endpoint, HostState.SWITCHED, release="20260101-000000-1"))
    log.flush()
    log.close()
    result = RunHost.objects.get(run=run, host=host)
    assert (result.status, result.release) == (RunHost.Status.SWITCHED, "20260101-000000-1")


def test_a_flood_costs_a_counter_not_queue_memory(run, settings, monkeypatch):
    settings.WALLE_LOG_MAX_LINES = 100
    monkeypatch.setattr(RunLog, "FLUSH_EVERY", 60)  # the writer sleeps: nothing is drained meanwhile
    log = RunLog(run, on_host=Recorder(run).host)
    for n in range(50_000):
        log("127.0.0.11", Stage.PRE_DEPLOY, Stream.STDOUT, f"line {n}")
    assert log._queue.qsize() <= 100 + 1  # what is stored, and the marker
    assert log.cut_lines == 50_000 - log.stored_lines
    log.close()
    assert run.log_lines.count() <= 101


def test_the_marker_keeps_counting_while_the_run_goes_on(run, settings):
    settings.WALLE_LOG_MAX_LINES = 20
    log = RunLog(run, on_host=Recorder(run).host)
    for n in range(30):
        log("", Stage.CHECKOUT, Stream.STDOUT, f"a {n}")
    log.flush()
    first = run.log_lines.get(text__startswith="[log limit]").text
    for n in range(70):
        log("", Stage.CHECKOUT, Stream.STDOUT, f"b {n}")
    log.flush()
    log.close()
    later = run.log_lines.get(text__startswith="[log limit]").text
    assert first != later and "82 lines" in later  # 18 kept (2 reserved), 12 + 70 cut


# --- Reading: the ticket page, the JSON endpoint and the API ---------------------

def make_log(ticket: Ticket, lines: int, text: str = "line {seq}") -> DeployRun:
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED, stage="finish")
    LogLine.objects.bulk_create([
        LogLine(run=run, seq=seq, host="", stage="transfer", stream="stdout", text=text.format(seq=seq))
        for seq in range(1, lines + 1)
    ])
    return run


def test_the_ticket_page_renders_only_the_tail_and_offers_earlier_lines(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    make_log(ticket, 1200)
    client.force_login(world.users["reporter"])
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', page)]
    assert seqs == list(range(701, 1201))
    assert 'data-first="701"' in page and 'data-after="1200"' in page
    assert re.search(r'<button[^>]*id="log-earlier"(?![^>]*hidden)', page)

    url = reverse("ticket_log", args=[ticket.pk])
    earlier = client.get(url, {"before": 701}).json()
    assert [line["seq"] for line in earlier["lines"]] == list(range(1, 701))
    assert earlier["first_seq"] == 1 and earlier["more_before"] is False


def test_a_short_log_has_no_load_earlier_control_showing(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    make_log(ticket, 10)
    client.force_login(world.users["reporter"])
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert re.search(r'<button[^>]*id="log-earlier"[^>]*hidden', page)


def test_the_ticket_page_tail_is_bounded_by_bytes(client, world, settings):
    settings.WALLE_API_LOG_PAGE_BYTES = 100_000
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    make_log(ticket, 300, text="{seq} " + "y" * 10_000)
    client.force_login(world.users["reporter"])
    response = client.get(reverse("ticket_detail", args=[ticket.pk]))
    assert len(response.content) < 200_000
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', response.content.decode())]
    assert seqs and seqs[-1] == 300 and len(seqs) <= 10


def test_the_json_log_pages_by_bytes_and_the_poller_continues_where_it_stopped(client, world, settings):
    settings.WALLE_API_LOG_PAGE_BYTES = 50_000
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    make_log(ticket, 30, text="{seq:04d}" + "z" * 9_996)
    client.force_login(world.users["reporter"])
    url = reverse("ticket_log", args=[ticket.pk])
    got, after = [], 0
    for _ in range(10):
        data = client.get(url, {"after": after}).json()
        assert len(json.dumps(data["lines"])) < 60_000
        got += [line["seq"] for line in data["lines"]]
        after = data["last_seq"]
        if not data["more"]:
            break
    assert got == list(range(1, 31))


def test_api_log_pages_are_bounded_by_bytes_and_say_where_to_continue(world, settings):
    settings.WALLE_API_LOG_PAGE_BYTES = 250_000
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    make_log(ticket, 10, text="{seq:05d}" + "q" * 99_995)
    client = APIClient()
    client.force_authenticate(world.users["reporter"])
    url = f"/api/tickets/{ticket.pk}/log/"
    first = client.get(url)
    body = first.json()
    assert len(first.content) < 300_000
    assert [line["seq"] for line in body["lines"]] == [1, 2]
    assert (body["next_after"], body["more"], body["more_before"]) == (2, True, False)
    rest = []
    after = body["next_after"]
    while True:
        page = client.get(url, {"after": after}).json()
        rest += [line["seq"] for line in page["lines"]]
        after = page["next_after"]
        if not page["more"]:
            break
    assert rest == list(range(3, 11))
    back = client.get(url, {"before": 10, "limit": 3}).json()
    assert [line["seq"] for line in back["lines"]] == [8, 9]  # bytes bound before the limit
    assert (back["next_before"], back["more_before"]) == (8, True)


def test_api_log_limit_bounds_lines(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    make_log(ticket, 50)
    client = APIClient()
    client.force_authenticate(world.users["reporter"])
    body = client.get(f"/api/tickets/{ticket.pk}/log/", {"after": 5, "limit": 10}).json()
    assert [line["seq"] for line in body["lines"]] == list(range(6, 16))
    assert (body["next_after"], body["more"], body["next_before"], body["more_before"]) == (15, True, 6, True)
    for bad in ("0", "2001", "-1", "x"):
        assert client.get(f"/api/tickets/{ticket.pk}/log/", {"limit": bad}).status_code == 400


def test_a_secret_straddling_the_line_cut_is_masked_not_half_stored(run):
    secret = "tok-" + "S" * 40
    log = RunLog(run, on_host=Recorder(run).host)
    log.add_secret(Secret(secret))
    cut_at = runlog.MAX_LINE_CHARS
    log("", Stage.POST_DEPLOY, Stream.STDOUT, "x" * (cut_at - 10) + secret + "tail")
    log.close()
    stored = "".join(LogLine.objects.filter(run=run).values_list("text", flat=True))
    assert secret[:10] not in stored and "SSSSSSSSSS" not in stored
