"""What changed in a model instance, as ``{field: [before, after]}``.

Secrets never enter an entry: a field that holds one is recorded as
``SECRET`` ("changed") whatever its values. Values are stored as text a
person can read (a group's name, not its id; a role's label, not its number).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.utils import translation
from django.utils.translation import gettext

SECRET = "changed"

# Encrypted values, token hashes and private key material; public keys, host
# keys and fingerprints are public and shown.
SECRET_SUFFIXES = ("_encrypted", "_hash")
SECRET_WORDS = ("secret", "password", "private")
# Bookkeeping that changes on its own (every login), not configuration.
IGNORED_FIELDS = {"last_login"}


def is_secret(field_name: str) -> bool:
    name = field_name.lower()
    return name.endswith(SECRET_SUFFIXES) or any(word in name for word in SECRET_WORDS)


def tracked_fields(model: type[models.Model]) -> list[models.Field]:
    """Concrete fields that describe configuration: not the primary key, and
    not timestamps Django sets by itself on every save."""
    return [
        f for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in IGNORED_FIELDS
        and not getattr(f, "auto_now", False) and not getattr(f, "auto_now_add", False)
    ]


def raw_values(instance: models.Model) -> dict[str, Any]:
    """Comparable values (foreign keys as ids), taken before a save."""
    return {f.name: getattr(instance, f.attname) for f in tracked_fields(type(instance))}


def readable(instance: models.Model, field: models.Field) -> Any:
    """One field's value as JSON a person can read."""
    value = getattr(instance, field.attname)
    if value is None:
        return None
    if field.is_relation:
        try:
            return str(getattr(instance, field.name))
        except ObjectDoesNotExist:  # a row deleted in the same transaction: its id says what it was
            return str(value)
    if field.choices:
        with translation.override(settings.LANGUAGE_CODE):
            return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def diff(before: models.Model | None, after: models.Model | None) -> dict:
    """``{field: [before, after]}`` for the fields that differ. ``before`` None
    is a creation, ``after`` None a deletion."""
    model = type(after if after is not None else before)
    old = raw_values(before) if before is not None else {}
    new = raw_values(after) if after is not None else {}
    changes: dict[str, Any] = {}
    for field in tracked_fields(model):
        if before is not None and after is not None and old.get(field.name) == new.get(field.name):
            continue
        if is_secret(field.name):
            changes[field.name] = SECRET
            continue
        changes[field.name] = [
            readable(before, field) if before is not None else None,
            readable(after, field) if after is not None else None,
        ]
    if before is None or after is None:
        # A creation or deletion lists only what was set.
        changes = {k: v for k, v in changes.items() if v == SECRET or any(x not in (None, "") for x in v)}
    return changes


def for_reader(model_label: str, changes: dict) -> dict:
    """``changes`` with the choice labels ``readable`` recorded in the
    installation's language shown in the reader's (the active) language."""
    try:
        model = apps.get_model(model_label)
    except (LookupError, ValueError):  # a model since removed: show what was recorded
        return changes
    return {name: _relabelled(model, name, value) for name, value in changes.items()}


def _relabelled(model: type[models.Model], name: str, value: Any) -> Any:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return value
    if not isinstance(value, list) or not field.choices:
        return value
    with translation.override(settings.LANGUAGE_CODE):
        keys = {str(label): key for key, label in field.flatchoices}
    labels = dict(field.flatchoices)
    return [str(labels[keys[v]]) if v in keys else v for v in value]


def names(objects: Iterable[models.Model]) -> list[str]:
    return sorted(str(obj) for obj in objects)


def as_text(changes: dict) -> str:
    """One line: ``field: before → after; secret: changed``."""
    parts = []
    for field, value in changes.items():
        if not isinstance(value, list):
            parts.append(f"{field}: {gettext('changed')}")
            continue
        before, after = (shown(v) for v in value)
        parts.append(f"{field}: {before} → {after}")
    return "; ".join(parts)


def shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
