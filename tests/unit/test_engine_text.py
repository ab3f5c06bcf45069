"""The engine's translation marker: English for the engine's own readers
(logs, API, tests), the template and values for the page that translates it."""

from __future__ import annotations

import pickle

from django.utils import translation

from engine.text import N_, Text
from walleproj.i18n import translate


def test_a_marked_text_reads_as_english_and_keeps_its_template_and_values():
    text = N_("{path} is not writable by {user}", path="/data/releases", user="www")
    assert text == "/data/releases is not writable by www" and isinstance(text, str)
    assert text.template == "{path} is not writable by {user}" and text.params == {"path": "/data/releases", "user": "www"}
    assert pickle.loads(pickle.dumps(text)).template == text.template


def test_the_web_side_translates_a_marked_text_with_its_values():
    text = N_("cannot read the repository: {detail}", detail=N_("git exit status {status}", status=128))
    with translation.override("zh-hans"):
        assert translate(text) == "无法读取代码仓库\uff1agit 退出码 128"  # \uff1a: the full-width colon
        assert translate("Permission denied (publickey)") == "Permission denied (publickey)"  # ssh's own words
    with translation.override("en"):
        assert translate(text) == "cannot read the repository: git exit status 128"
    assert isinstance(text, Text)
