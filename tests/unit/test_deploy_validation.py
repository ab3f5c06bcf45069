"""Plan values are refused before the engine touches anything (security.md T5/T6)."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from engine import validate
from engine.plan import DeployPlan, RollbackPlan, Secret, Target
from engine.ssh import remote_command
from engine.validate import PlanError
from tests.unit.plans import KEY, sample_plan


def make_plan(**changes: object) -> DeployPlan:
    return sample_plan(**changes)


@pytest.mark.parametrize(
    "path",
    [
        "/var/www;rm -rf /",
        "../x",
        "x/y",
        "/a/../b",
        "/a/./b",
        "/a//b",
        "/a/b/",
        "//a",
        "",
        "/a b",
        "/a\nb",
        "/a$(id)",
        "/a`id`",
        "/a'b",
        '/a"b',
        "/a|b",
        "/a&b",
        "/a>b",
        "/a*",
    ],
)
def test_hostile_or_sloppy_paths_are_refused(path: str) -> None:
    with pytest.raises(PlanError):
        validate.check_abs_path("webroot", path)


@pytest.mark.parametrize("path", ["/data/nginx/website", "/srv/www/site-1", "/opt/a.b/c_d", "/x/-dash", "/a/b+c@d=e,f"])
def test_accepted_paths_reach_the_remote_shell_as_exactly_one_word(path: str) -> None:
    assert validate.check_abs_path("webroot", path) == path
    words = shlex.split(remote_command(["test", "-d", path], cwd=path, timeout=5))
    assert words == ["cd", "--", path, "&&", "timeout", "--kill-after=5", "5", "test", "-d", path]


@pytest.mark.parametrize(
    ("webroot", "library"),
    [
        ("/website", "/data/releases"),  # webroot parent is /
        ("/data/nginx/website", "/"),
        ("/data/releases", "/data/releases"),
        ("/data/releases/current", "/data/releases"),
        ("/data/www", "/data/www/releases"),
    ],
)
def test_unsafe_layouts_are_refused(webroot: str, library: str) -> None:
    with pytest.raises(PlanError):
        validate.check_layout(webroot, library)


def test_a_normal_layout_is_accepted() -> None:
    validate.check_layout("/data/nginx/website", "/data/releases")
    validate.check_layout("/data/nginx/website", "/data/releases/website")


def test_webroot_slash_is_refused() -> None:
    with pytest.raises(PlanError):
        validate.check_layout("/", "/data/releases")


@pytest.mark.parametrize("user", ["", "root;id", "-oProxyCommand", "WWW", "a b", "x" * 40])
def test_bad_run_users_are_refused(user: str) -> None:
    with pytest.raises(PlanError):
        validate.check_user(user)


@pytest.mark.parametrize("name", ["20240102-030405-7", "20991231-235959-123456"])
def test_release_names_of_walle_pass(name: str) -> None:
    assert validate.check_release_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "current",
        "2024-01-02",
        "20240102-030405-",
        "../20240102-030405-7",
        "20240102-030405-7/..",
        "20240102-030405-7\n",
        "x20240102-030405-7",
    ],
)
def test_other_release_names_are_refused(name: str) -> None:
    with pytest.raises(PlanError):
        validate.check_release_name(name)


def test_target_without_pinned_key_is_refused_with_a_hint() -> None:
    with pytest.raises(PlanError, match="no pinned host key; run the config check"):
        validate.check_target(Target(1, "127.0.0.11"))


@pytest.mark.parametrize("address", ["-oProxyCommand=id", "a b", "host;id", "", "[::1]", "::1;id", "fd00::1 x", ":::"])
def test_target_addresses_that_could_be_options_or_shell_are_refused(address: str) -> None:
    with pytest.raises(PlanError):
        validate.check_target(Target(1, address, 22, KEY))


@pytest.mark.parametrize("address", ["::1", "fd00::1", "127.0.0.11", "web-1.example.com"])
def test_ip_literals_and_host_names_are_accepted(address: str) -> None:
    assert validate.check_address(address) == address


def test_a_complete_plan_passes() -> None:
    validate.check_deploy_plan(make_plan())


@pytest.mark.parametrize(
    "changes",
    [
        {"workspace": "relative/ws"},
        {"release_name": "latest"},
        {"targets": ()},
        {"targets": (Target(1, "127.0.0.11", 22, KEY), Target(2, "127.0.0.11", 22, KEY))},
        {"excludes": ("ok", "bad\nline")},
        {"max_parallel": 0},
        {"post_release_delay": -1},
        {"command_timeout": 0},
        {"key": Secret("")},
    ],
)
def test_plans_with_a_bad_value_are_refused(changes: dict) -> None:
    with pytest.raises(PlanError):
        validate.check_deploy_plan(make_plan(**changes))


def test_rollback_plan_checks_every_release_name() -> None:
    base = make_plan()
    plan = RollbackPlan(
        **{
            f.name: getattr(base, f.name)
            for f in dataclasses.fields(RollbackPlan)
            if f.name not in ("commit", "releases")
        },
        releases=((Target(1, "127.0.0.11", 22, KEY), "../../etc"),),
    )
    with pytest.raises(PlanError, match="release name"):
        validate.check_rollback_plan(plan)
