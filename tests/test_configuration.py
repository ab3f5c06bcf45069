"""Storage and broker are chosen by environment variables (README, Configuration)."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connection
from django_q.brokers import get_broker


def test_database_and_broker_follow_the_environment(db):
    broker = type(get_broker()).__name__
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert connection.vendor == "postgresql"
    else:
        assert connection.vendor == "sqlite"
    if os.environ.get("WALLE_REDIS_URL"):
        assert broker == "Redis"
        assert get_broker().ping()
    else:
        assert broker == "ORM"


def test_a_deploy_is_never_delivered_twice_by_the_broker():
    q = settings.Q_CLUSTER
    assert q["timeout"] < q["retry"]
    assert q["max_attempts"] == 1 and q["ack_failures"] is True
