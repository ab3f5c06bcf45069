"""The database-level guard: triggers that abort any UPDATE or DELETE of an
audit entry, so not even raw SQL through Walle's connection changes the log.

Per vendor, for the databases that offer triggers (SQLite, PostgreSQL); on
others the model and admin guards stay the only ones. The migration installs
them; ``manage.py flush`` (which empties every table, as the test runner does
between tests) lifts them for its duration only.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditentry"
MESSAGE = "audit entries are append-only"

INSTALL = {
    "sqlite": [
        f"CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON {TABLE} "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        f"CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON {TABLE} "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$",
        f"CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
    ],
}

REMOVE = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_entry_no_update", "DROP TRIGGER IF EXISTS audit_entry_no_delete"],
    "postgresql": [
        f"DROP TRIGGER IF EXISTS audit_entry_append_only ON {TABLE}",
        "DROP FUNCTION IF EXISTS audit_entry_append_only()",
    ],
}


def _run(connection: BaseDatabaseWrapper, statements: dict[str, list[str]]) -> None:
    with connection.cursor() as cursor:
        for sql in statements.get(connection.vendor, []):
            cursor.execute(sql)


def install(connection: BaseDatabaseWrapper) -> None:
    _run(connection, INSTALL)


def remove(connection: BaseDatabaseWrapper) -> None:
    _run(connection, REMOVE)


def has_guard(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor in INSTALL
