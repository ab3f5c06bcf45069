"""The console writer the engine logs through: order, masking, storage."""

from __future__ import annotations

from engine.plan import Secret, Stage, Stream
from projects.keys import create_key
from releases.models import DeployRun, Ticket
from releases.recorder import Recorder
from releases.runlog import RunLog

from . import helpers


def test_lines_are_stored_in_order_with_the_private_key_masked(transactional_db, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING)
    private = create_key("canary").private_key()
    log = RunLog(run, on_host=Recorder(run).host)
    log.add_secret(Secret(private))
    log("127.0.0.11", Stage.PRE_RELEASE, Stream.STDOUT, "first")
    log("127.0.0.11", Stage.PRE_RELEASE, Stream.STDOUT, f"oops {private}")
    log("127.0.0.12", Stage.PRE_RELEASE, Stream.STDERR, "body " + private.splitlines()[1])
    log.note(Stage.FINISH, Stream.INFO, "done")
    log.flush()
    log.close()
    rows = list(run.log_lines.order_by("seq").values_list("seq", "host", "stream", "text"))
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[0] == (1, "127.0.0.11", "stdout", "first")
    assert rows[3][1:] == ("", "info", "done")
    stored = "\n".join(r[3] for r in rows)
    assert "PRIVATE KEY" not in stored and private.splitlines()[1] not in stored
    assert stored.count("[MASKED]") >= 2
    run.refresh_from_db()
    assert run.stage == "finish"
