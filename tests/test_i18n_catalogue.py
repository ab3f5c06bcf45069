"""The Simplified Chinese catalogue is complete and compiled (issue 10).

The strings are extracted from the code as it is now (Walle's makemessages,
written to a temporary directory) and every one must be in
locale/zh_Hans/LC_MESSAGES/django.po, translated and not fuzzy; the committed
django.mo must say exactly what the .po says, since a fresh clone runs from
the .mo without gettext tools.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import django
import polib
import pytest
from django.apps import apps
from django.core.management import call_command

from projects.management.commands.makemessages import walle_sources

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|\{\w*\}")


def key(entry: polib.POEntry | polib.MOEntry) -> tuple[str, str, str]:
    return entry.msgctxt or "", entry.msgid, entry.msgid_plural or ""


def is_translated(entry: polib.POEntry) -> bool:
    texts = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
    return "fuzzy" not in entry.flags and all(texts) and bool(texts)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> polib.POFile:
    if shutil.which("xgettext") is None:
        reason = "xgettext is missing (apt-get install gettext)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must check the catalogue")
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("locale")
    with contextlib.chdir(ROOT):  # makemessages reads the tree below the working directory
        call_command("makemessages", locale=["zh_Hans"], output_dir=str(out), verbosity=0)
    written = out / "zh_Hans" / "LC_MESSAGES" / "django.po"
    assert written.is_file(), "makemessages --output-dir wrote no catalogue"
    return polib.pofile(str(written))


@pytest.fixture(scope="module")
def committed() -> polib.POFile:
    return polib.pofile(str(CATALOGUE / "django.po"))


def test_every_marked_string_is_in_the_chinese_catalogue_and_translated(extracted, committed):
    entries = {key(e): e for e in committed if not e.obsolete}
    missing = [e.msgid for e in extracted if key(e) not in entries]
    untranslated = [e.msgid for e in extracted if key(e) in entries and not is_translated(entries[key(e)])]
    assert len(extracted) > 500, "the extraction found far too few strings; is the makemessages command broken?"
    assert not missing, "not in django.po (run manage.py makemessages -l zh_Hans, see docs/i18n.md):\n" + "\n".join(missing)
    assert not untranslated, "empty or fuzzy in django.po:\n" + "\n".join(untranslated)


def test_the_extraction_reads_the_engine_marker_and_skips_tests(extracted):
    msgids = {e.msgid for e in extracted}
    assert "{path} is not writable by {user}" in msgids  # engine/checks.py, marked with N_
    sources = {path for e in extracted for path, _line in e.occurrences}
    walle = tuple(f"{source.relative_to(ROOT)}/" for source in walle_sources())
    assert "engine/" in walle and "templates/" in walle and "tests/" not in walle
    assert sources and all(path.startswith(walle) for path in sources), sorted(sources)


def test_the_extraction_reads_nothing_else_below_the_checkout(tmp_path):
    """A workspace or data dir inside the checkout holds hostile repositories:
    their strings must never reach the catalogue maintainers translate."""
    if shutil.which("xgettext") is None:
        pytest.skip("xgettext is missing (apt-get install gettext)")
    planted = ROOT / "var-i18n-probe"
    planted.mkdir()
    try:
        (planted / "evil.py").write_text('from django.utils.translation import gettext as _\n_("planted by a repo")\n')
        out = tmp_path / "locale"
        out.mkdir()
        with contextlib.chdir(ROOT):
            call_command("makemessages", locale=["zh_Hans"], output_dir=str(out), verbosity=0)
        catalogue = polib.pofile(str(out / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    finally:
        shutil.rmtree(planted)
    assert len(catalogue) > 500 and "planted by a repo" not in {e.msgid for e in catalogue}


def test_translations_keep_every_placeholder(committed):
    wrong = []
    for entry in committed.translated_entries():
        wanted = sorted(PLACEHOLDER.findall(entry.msgid))
        for text in entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]:
            if sorted(set(PLACEHOLDER.findall(text))) != sorted(set(wanted)):
                wrong.append(f"{entry.msgid!r} -> {text!r}")
    assert not wrong, "\n".join(wrong)


def test_the_compiled_catalogue_matches_the_po_file(committed):
    compiled = polib.mofile(str(CATALOGUE / "django.mo"))
    in_mo = {key(e): (e.msgstr, dict(e.msgstr_plural)) for e in compiled if e.msgid}
    in_po = {key(e): (e.msgstr, {int(n): t for n, t in e.msgstr_plural.items()})
             for e in committed.translated_entries()}
    in_mo = {k: (msgstr, {int(n): t for n, t in plural.items()}) for k, (msgstr, plural) in in_mo.items()}
    stale = sorted(k[1] for k in in_po.keys() ^ in_mo.keys()) + sorted(
        k[1] for k in in_po.keys() & in_mo.keys() if in_po[k] != in_mo[k]
    )
    assert not stale, "django.mo is out of step with django.po (run manage.py compilemessages):\n" + "\n".join(stale)


# Walle's catalogue comes first (LOCALE_PATHS), so a msgid it shares with Django
# or an installed app changes that app's pages too. These differ on purpose:
INTENDED_OVERRIDES = {
    "group", "groups", "Group",  # a team is a 分组 everywhere in Walle, auth's and guardian's pages included
    "Duration", "Email", "Queued", "Action", "active", "version", "object id", "Filter", "Log out",  # same sense
    "Created",  # DRF uses it only as the text of an HTTP 201, which no page shows
}


def installed_chinese() -> dict[tuple[str, str, str], str]:
    """Django's and every installed app's own zh_Hans translations."""
    dirs = [Path(django.__file__).parent / "conf" / "locale"]
    dirs += [Path(app.path) / "locale" for app in apps.get_app_configs() if Path(app.path).parent != ROOT]
    found: dict[tuple[str, str, str], str] = {}
    for mo in (d / "zh_Hans" / "LC_MESSAGES" / "django.mo" for d in dirs):
        if mo.is_file():
            for entry in polib.mofile(str(mo)):
                found.setdefault(key(entry), entry.msgstr)
    return found


def test_walle_does_not_change_the_chinese_of_django_and_its_apps(committed):
    theirs = installed_chinese()
    assert len(theirs) > 500, "Django's own Chinese catalogues were not found"
    changed = [f"{e.msgid!r}: {e.msgstr} (theirs: {theirs[key(e)]})" for e in committed.translated_entries()
               if key(e) in theirs and theirs[key(e)] != e.msgstr and e.msgid not in INTENDED_OVERRIDES]
    assert not changed, "give Walle's string a context (msgctxt) instead:\n" + "\n".join(changed)
