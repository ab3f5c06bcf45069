"""Keep-N selection: only Walle release names, never the current or previous one."""

from __future__ import annotations

from engine.hostops import SWITCH_SCRIPT, releases_to_remove, switch_argv, temp_link_path

R = [f"2024010{d}-120000-{d}" for d in range(1, 8)]  # R[0] oldest ... R[6] newest


def test_keeps_the_newest_n() -> None:
    assert sorted(releases_to_remove(R, 3, protect={R[6], R[5]})) == R[:4]


def test_never_removes_current_or_previous_even_when_old() -> None:
    # A rollback target may be older than the newest N.
    assert releases_to_remove(R, 2, protect={R[6], R[0]}) == [R[4], R[3], R[2], R[1]]


def test_foreign_directories_are_never_selected() -> None:
    names = [*R, "current", "shared", "20240101-120000", "backup-20240101-120000-1", "20240101-120000-1.old", ".x"]
    assert set(releases_to_remove(names, 1, protect=set())) == set(R[:6])


def test_keep_zero_or_negative_keeps_everything() -> None:
    assert releases_to_remove(R, 0, protect=set()) == []
    assert releases_to_remove(R, -1, protect=set()) == []


def test_fewer_releases_than_keep_removes_nothing() -> None:
    assert releases_to_remove(R[:2], 10, protect=set()) == []


def test_ticket_ids_sort_numerically_within_a_second() -> None:
    names = ["20240101-120000-9", "20240101-120000-10", "20240101-120000-100"]
    assert releases_to_remove(names, 1, protect=set()) == ["20240101-120000-10", "20240101-120000-9"]


def test_switch_is_ln_to_a_temp_name_then_mv_t_with_paths_as_arguments() -> None:
    argv = switch_argv("/data/releases/20240101-120000-9", "/data/nginx/website", 9)
    assert argv == [
        "sh",
        "-c",
        SWITCH_SCRIPT,
        "walle-switch",
        "/data/releases/20240101-120000-9",
        "/data/nginx/.website.walle-tmp-9",
        "/data/nginx/website",
    ]
    assert "ln -sfn" in SWITCH_SCRIPT and "mv -fT" in SWITCH_SCRIPT
    assert temp_link_path("/a/b", 1) == "/a/.b.walle-tmp-1"
