"""The README's tour, its Chinese translation and the seed-story browser test
must not drift apart: the same numbered steps on both sides, and every button
or page a walked step names in bold is one the browser test presses or reads,
with the text it asserts in that language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from tests.browser.test_seed_story_browser import STEP_NAMES, TEXTS, TOUR_STEPS

README = Path(settings.BASE_DIR) / "README.md"
README_ZH = Path(settings.BASE_DIR) / "README.zh-CN.md"
TOUR_HEADINGS = {README: "## A short tour", README_ZH: "## 导览"}
# Walle's own strings the browser test asserts in Chinese: the English text is
# the msgid, so the catalogue must turn it into exactly the Chinese text
# asserted. ("{name}" in the test is "%(project)s" in the catalogue, "{group}" "%(group)s".)
CATALOGUE_KEYS = [
    "accounts", "developer", "maintainer", "secrets", "secrets_title", "run_check", "check_passed", "submitted", "pending", "waiting_for",
    "approve", "approved_msg", "approved", "deploy", "deploy_queued", "succeeded", "roll_back", "confirm_rollback",
    "rolling_back",
]


def tour_steps(path: Path) -> dict[int, str]:
    """Step number -> its text (continuation lines joined), from the tour section."""
    section = path.read_text(encoding="utf-8").split(TOUR_HEADINGS[path], 1)[1]
    steps: dict[int, str] = {}
    current = None
    for line in section.splitlines()[1:]:
        if match := re.match(r"(\d+)\. (.*)", line):
            current = int(match.group(1))
            steps[current] = match.group(2)
        elif current is not None and line.startswith("   "):
            steps[current] += " " + line.strip()
        elif line.strip() and current is not None:
            break  # the first paragraph after the list ends the tour
    return steps


def bold_names(text: str) -> list[str]:
    return re.findall(r"\*\*(.+?)\*\*", text)


def as_msgid(text: str) -> str:
    return text.replace("{id}", "%(id)s").replace("{name}", "%(project)s").replace("{group}", "%(group)s")


def test_the_tour_is_found_and_numbered_from_one():
    steps = tour_steps(README)
    assert list(steps) == list(range(1, len(steps) + 1)) and len(steps) >= max(TOUR_STEPS)


def test_both_readmes_have_the_same_numbered_steps():
    assert list(tour_steps(README_ZH)) == list(tour_steps(README))


def test_both_readmes_link_to_each_other():
    assert "[中文](README.zh-CN.md)" in README.read_text(encoding="utf-8").split("\n\n", 2)[1]
    assert "[English](README.md)" in README_ZH.read_text(encoding="utf-8").split("\n\n", 2)[1]


@pytest.mark.parametrize(("readme", "language"), [(README, "en"), (README_ZH, "zh")])
def test_what_each_walked_step_names_is_what_the_browser_test_asserts(readme, language):
    steps = tour_steps(readme)
    for number, keys in STEP_NAMES.items():
        pressed = sorted(TEXTS[language][key] for key in keys)
        assert sorted(bold_names(steps[number])) == pressed, f"{readme.name} step {number}"


@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_the_chinese_texts_asserted_are_the_catalogues(key):
    with translation.override("zh-hans"):
        translated = translation.gettext(as_msgid(TEXTS["en"][key]))
    assert translated == as_msgid(TEXTS["zh"][key])


@pytest.mark.parametrize(("key", "verbose_name"), [
    ("user_added", "user"), ("group_added", "group"), ("project_added", "project"),
])
def test_the_chinese_admin_messages_asserted_are_djangos_with_walles_names(key, verbose_name):
    # Django's admin message around the model's verbose name from Walle's catalogue.
    with translation.override("zh-hans"):
        message = translation.gettext("The {name} “{obj}” was added successfully.")
        expected = message.format(name=translation.gettext(verbose_name), obj="{name}")
    assert TEXTS["zh"][key].replace(" [production]", "") == expected  # a project reads "<name> [<environment>]"


def test_the_chinese_linked_hosts_message_asserted_is_the_catalogues():
    with translation.override("zh-hans"):
        message = translation.ngettext("Linked %(count)d host: %(hosts)s", "Linked %(count)d hosts: %(hosts)s", 3)
    assert message % {"count": 3, "hosts": "{hosts}"} == TEXTS["zh"]["hosts_linked"]
