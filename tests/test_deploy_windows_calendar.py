"""The pure time logic of deploy windows and freezes (projects.windows): plain
values in, instants and words out, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from projects.windows import (
    Calendar,
    Freeze,
    Window,
    closed_message,
    describe,
    freeze_at,
    is_open,
    is_valid_zone,
    next_open,
    open_until,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
MON_THU = frozenset({0, 1, 2, 3})
OFFICE = Window(MON_THU, time(10), time(17))


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def production(*freezes: Freeze, windows: tuple[Window, ...] = (OFFICE,), zone: str = "Asia/Shanghai") -> Calendar:
    return Calendar(zone, windows, freezes)


def test_without_windows_or_freezes_deploys_are_always_open():
    cal = Calendar("UTC")
    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert is_open(cal, now) and next_open(cal, now) == now
    assert open_until(cal, now) is None
    assert closed_message(cal, now, "test") is None


def test_a_deploy_on_friday_is_told_the_window_of_monday_in_the_environments_zone():
    cal = production()
    friday = shanghai(2026, 12, 4, 12, 0)
    assert not is_open(cal, friday)
    assert next_open(cal, friday) == shanghai(2026, 12, 7, 10, 0)
    assert closed_message(cal, friday, "production") == (
        "Production deploys are allowed Mon-Thu 10:00-17:00 Asia/Shanghai; next window opens Mon 2026-12-07 10:00"
    )


def test_inside_a_window_it_is_open_until_the_window_closes_and_the_end_is_excluded():
    cal = production()
    tuesday = shanghai(2026, 12, 8, 11, 30)
    assert is_open(cal, tuesday)
    assert open_until(cal, tuesday) == shanghai(2026, 12, 8, 17, 0)
    assert next_open(cal, tuesday) == tuesday
    assert is_open(cal, shanghai(2026, 12, 8, 10, 0))
    assert not is_open(cal, shanghai(2026, 12, 8, 17, 0))
    assert next_open(cal, shanghai(2026, 12, 8, 17, 0)) == shanghai(2026, 12, 9, 10, 0)


def test_the_window_keeps_its_wall_clock_hours_across_a_dst_change():
    cal = Calendar("Europe/Berlin", (Window(frozenset(range(5)), time(9), time(17)),))
    friday_evening = datetime(2026, 3, 27, 18, 0, tzinfo=BERLIN)  # CET, UTC+1
    # Clocks go forward on Sunday 29 March: Monday's 09:00 is 07:00 UTC, not 08:00.
    assert next_open(cal, friday_evening) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert not is_open(cal, datetime(2026, 3, 27, 7, 30, tzinfo=UTC))  # 08:30 CET, before Friday's window
    assert is_open(cal, datetime(2026, 3, 30, 7, 30, tzinfo=UTC))  # 09:30 CEST
    assert open_until(cal, datetime(2026, 3, 30, 7, 30, tzinfo=UTC)) == datetime(2026, 3, 30, 15, 0, tzinfo=UTC)


def test_a_window_starting_at_a_wall_time_the_clocks_skip_opens_just_after_the_jump():
    cal = Calendar("Europe/Berlin", (Window(frozenset({6}), time(2, 30), time(4)),))
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    # 02:30 does not exist on 29 March 2026; 03:30 CEST (01:30 UTC) does.
    assert next_open(cal, saturday) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_a_freeze_spanning_windows_closes_them_and_names_its_reason_and_the_next_window():
    freeze = Freeze(date(2026, 12, 7), date(2026, 12, 8), "year-end release freeze")
    cal = production(freeze)
    monday = shanghai(2026, 12, 7, 11, 0)  # inside Monday's window, but frozen
    assert not is_open(cal, monday)
    assert freeze_at(cal, monday) == freeze
    assert next_open(cal, monday) == shanghai(2026, 12, 9, 10, 0)
    assert closed_message(cal, monday, "production") == (
        "Production deploys are frozen from 2026-12-07 to 2026-12-08: year-end release freeze; "
        "next window opens Wed 2026-12-09 10:00"
    )
    assert is_open(cal, shanghai(2026, 12, 9, 10, 0))


def test_a_freeze_without_windows_ends_at_midnight_after_its_last_day():
    cal = Calendar("Asia/Shanghai", (), (Freeze(date(2026, 10, 1), date(2026, 10, 7), "National Day"),))
    assert not is_open(cal, shanghai(2026, 10, 7, 23, 59))
    assert next_open(cal, shanghai(2026, 10, 3, 9, 0)) == shanghai(2026, 10, 8, 0, 0)
    assert open_until(cal, shanghai(2026, 9, 30, 12, 0)) == shanghai(2026, 10, 1, 0, 0)


def test_a_window_crossing_midnight_stays_open_into_the_next_day():
    cal = production(windows=(Window(frozenset({4}), time(22), time(2)),))  # Friday night
    saturday_night = shanghai(2026, 12, 5, 1, 0)
    assert is_open(cal, saturday_night)
    assert open_until(cal, saturday_night) == shanghai(2026, 12, 5, 2, 0)
    assert not is_open(cal, shanghai(2026, 12, 5, 3, 0))
    assert next_open(cal, shanghai(2026, 12, 5, 3, 0)) == shanghai(2026, 12, 11, 22, 0)
    assert describe(cal) == "Fri 22:00-02:00"


def test_a_freeze_cuts_a_window_crossing_midnight_at_the_frozen_days_start():
    freeze = Freeze(date(2026, 12, 5), date(2026, 12, 5), "maintenance")
    cal = production(freeze, windows=(Window(frozenset({4}), time(22), time(2)),))
    assert open_until(cal, shanghai(2026, 12, 4, 23, 0)) == shanghai(2026, 12, 5, 0, 0)
    assert not is_open(cal, shanghai(2026, 12, 5, 1, 0))


def test_touching_windows_make_one_stretch():
    cal = production(windows=(OFFICE, Window(MON_THU, time(17), time(20))))
    assert open_until(cal, shanghai(2026, 12, 8, 16, 0)) == shanghai(2026, 12, 8, 20, 0)


def test_weekdays_read_as_ranges_and_lists():
    cal = production(windows=(Window(frozenset({0, 2, 4}), time(9), time(12)), Window(frozenset({5, 6}), time(0),
                                                                                        time(6))))
    assert describe(cal) == "Mon, Wed, Fri 09:00-12:00, Sat-Sun 00:00-06:00"


def test_a_window_on_no_weekday_never_opens_and_says_so():
    cal = production(windows=(Window(frozenset(), time(10), time(17)),))
    now = shanghai(2026, 12, 8, 11, 0)
    assert next_open(cal, now) is None
    assert closed_message(cal, now, "production").endswith("no window opens within a year")


def test_only_known_iana_zone_names_are_valid():
    assert is_valid_zone("Asia/Shanghai") and is_valid_zone("UTC")
    assert not is_valid_zone("Mars/Olympus_Mons")
    assert not is_valid_zone("../../etc/passwd")
    assert not is_valid_zone("")
