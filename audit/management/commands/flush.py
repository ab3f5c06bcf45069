"""``flush`` that also empties the audit log.

Flushing removes every row of every table (the test runner does it between
tests that commit); the append-only triggers would abort that, so they are
lifted for the flush and put back after it, whatever happens.
"""

from __future__ import annotations

from django.core.management.commands import flush
from django.db import connections

from audit import guard


class Command(flush.Command):
    def handle(self, **options) -> None:
        connection = connections[options["database"]]
        table_exists = guard.TABLE in connection.introspection.table_names()
        if table_exists:
            guard.remove(connection)
        try:
            super().handle(**options)
        finally:
            if table_exists:
                guard.install(connection)
