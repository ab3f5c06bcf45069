"""Walle's pages read in Chinese for a Chinese browser (issue 10).

Each main page is rendered with Accept-Language zh-CN (Django maps it to
zh-hans) and must show the walkthrough's words, and none of the English
phrases the catalogue translates: a leftover means a string that was missed
or a page that does not translate.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
from django.urls import reverse

from engine.checks import CheckReport, CheckResult
from engine.text import N_
from releases.models import Ticket
from tests import helpers

CATALOGUE = Path(__file__).resolve().parents[1] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.8"}


class _Visible(HTMLParser):
    """The text a person reads: text nodes (not scripts or styles) and labels in attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs) -> None:
        self.hidden += tag in {"script", "style"}
        values = dict(attrs)
        self.parts += [values[name] or "" for name in ("title", "placeholder", "aria-label") if name in values]
        if tag == "input" and values.get("type") == "submit":
            self.parts.append(values.get("value") or "")

    def handle_endtag(self, tag) -> None:
        self.hidden -= tag in {"script", "style"}

    def handle_data(self, data) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(response) -> str:
    parser = _Visible()
    parser.feed(response.content.decode())
    return re.sub(r"\s+", " ", " ".join(parser.parts))


def english_phrases() -> list[str]:
    """The catalogue's English UI phrases: several words, no placeholders or markup."""
    phrases = []
    for entry in polib.pofile(str(CATALOGUE)).translated_entries():
        text = entry.msgid
        if " " in text and not re.search(r"[%{<&]", text) and entry.msgstr != text:
            phrases.append(text)
    return phrases


def leftovers(text: str) -> list[str]:
    return [phrase for phrase in english_phrases() if re.search(rf"\b{re.escape(phrase)}\b", text)]


def assert_chinese(response, *expected: str) -> None:
    assert response.status_code == 200
    text = visible_text(response)
    missing = [word for word in expected if word not in text]
    assert not missing, f"not on the page: {missing}"
    assert not leftovers(text), f"English left on a Chinese page: {leftovers(text)}"


@pytest.fixture
def ticket(world) -> Ticket:
    return helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.PENDING)


def test_the_login_page_reads_in_chinese(client):
    assert_chinese(client.get(reverse("login"), **ZH), "登录 Walle", "密码")


def test_the_dashboard_reads_in_chinese(client, world, ticket):
    client.force_login(world.users["maintainer"])
    assert_chinese(client.get(reverse("dashboard"), **ZH), "仪表盘", "等待我审核", "当前在线", "新建上线单", "审计日志")


def test_the_ticket_list_reads_in_chinese(client, world, ticket):
    client.force_login(world.users["developer"])
    assert_chinese(client.get(reverse("ticket_list"), **ZH), "上线单", "筛选", "待审核", "分支/标签")


def test_the_ticket_page_reads_in_chinese(client, world, ticket):
    client.force_login(world.users["maintainer"])
    response = client.get(reverse("ticket_detail", args=[ticket.pk]), **ZH)
    assert_chinese(response, "审核通过", "驳回", "时间线", "待审核", "已提交")


def test_the_new_ticket_page_reads_in_chinese(client, world):
    client.force_login(world.users["developer"])
    assert_chinese(client.get(reverse("ticket_new"), **ZH), "新建上线单", "项目")


def test_the_audit_log_reads_in_chinese(client, world, ticket):
    client.force_login(world.users["admin"])
    assert_chinese(client.get(reverse("audit_list"), **ZH), "审计日志", "导出 CSV", "操作人")


def test_the_project_admin_page_reads_in_chinese(client, world):
    client.force_login(world.users["maintainer"])
    response = client.get(reverse("admin:projects_project_change", args=[world.project.pk]), **ZH)
    # Walle's own labels, and Django's admin in its own Chinese.
    assert_chinese(response, "远程仓库地址", "发布版本库", "版本保留数", "运行配置检测", "机密变量", "保存", "账号与分组")


def test_the_ticket_admin_page_reads_in_chinese(client, world, ticket):
    client.force_login(world.users["maintainer"])
    response = client.get(reverse("admin:releases_ticket_change", args=[ticket.pk]), **ZH)
    assert_chinese(response, "上线单事件", "已提交", "待审核", "提交人")


def test_the_config_check_page_reads_in_chinese(client, world, monkeypatch):
    library = "/data/releases/website"
    report = CheckReport(results=[
        CheckResult("tools", "", True, N_("git, rsync and ssh are installed")),
        CheckResult("release library", "10.0.0.13:22", False, N_("{path} is not writable by {user}", path=library,
                    user="www"), N_("chown {user} {path}", path=library, user="www")),
        CheckResult("disk space", "10.0.0.13:22", True, N_("only {free} MB free in {path}", free=42, path=library),
                    N_("free some space or lower the number of releases kept"), warning=True),
    ])
    monkeypatch.setattr("projects.admin.run_check", lambda actor, project: report)
    client.force_login(world.users["maintainer"])
    response = client.post(reverse("admin:projects_project_check", args=[world.project.pk]), **ZH)
    assert_chinese(
        response, "部分检测未通过", "宿主机", "发布版本库", "失败", "警告", "通过", "解决方法", "返回项目",
        f"www 对 {library} 没有写权限", f"{library} 仅剩 42 MB", "请释放空间\uff0c或减少版本保留数",
    )


def test_pages_stay_english_for_an_english_browser(client, world, ticket):
    # The default is English, and a Chinese catalogue must not leak into it.
    client.force_login(world.users["maintainer"])
    text = visible_text(client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="en"))
    assert "Waiting for my approval" in text and "等待我审核" not in text
