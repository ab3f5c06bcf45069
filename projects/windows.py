"""Deploy windows and freezes: when an environment accepts deploys.

Pure Python over plain values (no ORM): ``Environment.calendar()`` builds a
:class:`Calendar`, and the workflow, the pages and the API ask it questions.

* A window is a weekly stretch of wall-clock time in the environment's time
  zone (``Mon-Thu 10:00-17:00``); one whose end is not after its start crosses
  midnight and ends on the next day (``Fri 22:00-02:00``).
* A freeze is a range of whole days (first and last day included, in the same
  zone) with a reason; it closes deploys even inside a window.
* No windows = always open, except in a freeze.

Wall times are turned into instants day by day, so a window still opens at
10:00 local time after a DST change; a wall time the clocks skip (02:30 on a
spring-forward night) is read as the instant after the jump (PEP 495, fold=0).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext as _

DAY = timedelta(days=1)
# How far ahead next_open looks: a freeze or an odd calendar never makes it loop.
HORIZON_DAYS = 400
FOREVER = datetime.max.replace(tzinfo=UTC)


def is_valid_zone(name: str) -> bool:
    """An IANA zone name this machine knows (``Asia/Shanghai``, ``UTC``)."""
    return name in available_timezones()


@dataclass(frozen=True)
class Window:
    weekdays: frozenset[int]  # 0 = Monday, as date.weekday()
    start: time
    end: time  # not after start: the window ends on the next day

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True)
class Freeze:
    start: date  # first frozen day
    end: date  # last frozen day (included)
    reason: str


@dataclass(frozen=True)
class Calendar:
    zone: str
    windows: tuple[Window, ...] = ()
    freezes: tuple[Freeze, ...] = ()
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tz", ZoneInfo(self.zone))

    @property
    def restricted(self) -> bool:
        return bool(self.windows or self.freezes)


def _instant(cal: Calendar, day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=cal.tz).astimezone(UTC)


def _window_stretches(cal: Calendar, now: datetime) -> list[tuple[datetime, datetime]]:
    """Every window occurrence from yesterday (a window crossing midnight may
    still be open) to the horizon, as UTC instants, sorted."""
    today = now.astimezone(cal.tz).date()
    found = []
    for offset in range(-1, HORIZON_DAYS):
        day = today + offset * DAY
        for window in cal.windows:
            if day.weekday() in window.weekdays:
                end_day = day + DAY if window.crosses_midnight else day
                found.append((_instant(cal, day, window.start), _instant(cal, end_day, window.end)))
    return sorted(found)


def _merge(stretches: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Join overlapping or touching stretches: Mon 10-17 and Mon 17-20 is one."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in stretches:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged


def _frozen(cal: Calendar) -> list[tuple[datetime, datetime]]:
    return _merge(sorted(
        (_instant(cal, f.start, time()), _instant(cal, f.end + DAY, time())) for f in cal.freezes
    ))


def _minus(stretches: list[tuple[datetime, datetime]], cuts: list[tuple[datetime, datetime]]) -> Iterator[
        tuple[datetime, datetime]]:
    for start, end in stretches:
        for cut_start, cut_end in cuts:
            if cut_end <= start or cut_start >= end:
                continue
            if cut_start > start:
                yield start, cut_start
            start = max(start, cut_end)
            if start >= end:
                break
        if start < end:
            yield start, end


def open_stretches(cal: Calendar, now: datetime) -> list[tuple[datetime, datetime]]:
    """When deploys are open, from about now to the horizon: sorted, disjoint
    (start, end) instants; an end of FOREVER means "no end"."""
    base = _merge(_window_stretches(cal, now)) if cal.windows else [(now - 2 * DAY, FOREVER)]
    return _merge(_minus(base, _frozen(cal)))


def is_open(cal: Calendar, now: datetime) -> bool:
    return any(start <= now < end for start, end in open_stretches(cal, now))


def next_open(cal: Calendar, now: datetime) -> datetime | None:
    """``now`` when open now, else when deploys open next (None: not within
    the horizon, e.g. windows on no weekday or a freeze of years)."""
    for start, end in open_stretches(cal, now):
        if end > now:
            return max(start, now)
    return None


def open_until(cal: Calendar, now: datetime) -> datetime | None:
    """When open now: when it closes (None: it never does)."""
    for start, end in open_stretches(cal, now):
        if start <= now < end:
            return None if end == FOREVER else end
    return None


def freeze_at(cal: Calendar, now: datetime) -> Freeze | None:
    today = now.astimezone(cal.tz).date()
    return next((f for f in cal.freezes if f.start <= today <= f.end), None)


# --- words ---------------------------------------------------------------------

def _days(weekdays: frozenset[int]) -> str:
    """{0, 1, 2, 3} -> "Mon-Thu"; {0, 2, 4} -> "Mon, Wed, Fri"."""
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names = [str(WEEKDAYS_ABBR[r[0]]) + (f"-{WEEKDAYS_ABBR[r[-1]]}" if len(r) > 1 else "") for r in runs]
    return ", ".join(names)


def describe(cal: Calendar) -> str:
    """"Mon-Thu 10:00-17:00, Fri 10:00-12:00" (wall times in the zone)."""
    return ", ".join(f"{_days(w.weekdays)} {w.start:%H:%M}-{w.end:%H:%M}" for w in cal.windows)


def local_text(cal: Calendar, when: datetime) -> str:
    """"Mon 2026-12-07 10:00", in the environment's zone."""
    local = when.astimezone(cal.tz)
    return f"{WEEKDAYS_ABBR[local.weekday()]} {local:%Y-%m-%d %H:%M}"


def closed_message(cal: Calendar, now: datetime, environment: str) -> str | None:
    """Why deploys are closed at ``now`` and when they open next; None when open."""
    if is_open(cal, now):
        return None
    env = environment[:1].upper() + environment[1:]
    upcoming = next_open(cal, now)
    when = (_("next window opens %(when)s") % {"when": local_text(cal, upcoming)} if upcoming
            else _("no window opens within a year"))
    freeze = freeze_at(cal, now)
    if freeze is not None:
        return _("%(env)s deploys are frozen from %(start)s to %(end)s: %(reason)s; %(when)s") % {
            "env": env, "start": freeze.start.isoformat(), "end": freeze.end.isoformat(),
            "reason": freeze.reason, "when": when,
        }
    return _("%(env)s deploys are allowed %(windows)s %(zone)s; %(when)s") % {
        "env": env, "windows": describe(cal), "zone": cal.zone, "when": when,
    }
