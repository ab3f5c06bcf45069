"""The seed story (the Chinese walkthrough "walle1.2 上线示例") through the pages
only, once in English and once in Chinese: the admin creates the two people
and their group and the production project on three real hosts, runs the
config check (检测), a Developer opens a ticket (上线单) for v1, a Maintainer
approves it, it deploys; then v2; then the Maintainer rolls back (回滚) to v1.

Each step follows the README's tour (README.md, README.zh-CN.md: the step
numbers in TOUR_STEPS and the names in TEXTS are what
tests/test_seed_story_catalogue.py holds the two READMEs to), asserts what the
person then reads in their language and leaves a screenshot in
test-artifacts/seed-story-<language>/.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from projects.environments import ensure_defaults
from projects.models import Project
from releases import fetching
from releases.models import Ticket
from tests import helpers
from tests.browser.test_story_browser import ARTIFACTS, browser, log_in, open_ticket, watch  # noqa: F401
from tests.deploy_fixtures import PAGE, V1_TEXT, V2_TEXT, Site, wait_for
from tests.infra.hosts import authorize_key

pytestmark = [pytest.mark.browser, pytest.mark.sshd, pytest.mark.worker]

# The tour's steps this story walks (README.md "A short tour", README.zh-CN.md
# "导览") and, per step, the TEXTS keys of what that step names in bold: the
# buttons, links and admin rows the person presses below.
STEP_NAMES: dict[int, tuple[str, ...]] = {
    1: ("accounts", "users", "group"),
    2: ("project", "secrets"),
    3: ("run_check",),
    4: ("approve", "deploy"),
    5: ("roll_back",),
}
TOUR_STEPS = tuple(STEP_NAMES)

# What the person presses and reads, per language. The English texts are the
# source strings; the Chinese ones are literal translations from the i18n
# catalogue (locale/zh_Hans/LC_MESSAGES/django.po) or, for Django's own admin
# texts, from Django's catalogue. "{...}" fields are filled at run time.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "locale": "en-US", "html_lang": "en", "language_name": "English",
        "accounts": "Accounts", "users": "Users", "group": "Group", "project": "project",
        "developer": "Developer", "maintainer": "Maintainer",
        "user_added": "The user “{name}” was added successfully.",
        "group_added": "The group “{name}” was added successfully.",
        "project_added": "The project “{name} [production]” was added successfully.",
        "hosts_linked": "Linked 3 hosts: {hosts}",
        "secrets": "Secrets", "secrets_title": "Secrets: {name}",
        "run_check": "Run config check", "check_passed": "All checks passed",
        "submitted": "Ticket #{id} submitted.", "pending": "Pending approval",
        "waiting_for": "Waiting for approval by a Maintainer or Owner of {group} other than its submitter.",
        "approve": "Approve", "approved_msg": "Ticket approved.", "approved": "Approved",
        "deploy": "Deploy", "deploy_queued": "Deploy queued.", "succeeded": "Succeeded",
        "roll_back": "Roll back",
        "confirm_rollback": "Roll back now? The hosts this ticket switched go back at once.",
        "rolling_back": "Rolling back: ticket #{id} is running.",
    },
    "zh": {
        "locale": "zh-CN", "html_lang": "zh-hans", "language_name": "简体中文",
        "accounts": "账号与分组", "users": "用户", "group": "分组", "project": "项目",
        "developer": "开发者（Developer）", "maintainer": "维护者（Maintainer）",
        "user_added": "成功添加了 用户“{name}”。",
        "group_added": "成功添加了 分组“{name}”。",
        "project_added": "成功添加了 项目“{name} [production]”。",
        "hosts_linked": "已关联 3 台主机：{hosts}",
        "secrets": "机密变量", "secrets_title": "机密变量：{name}",
        "run_check": "运行配置检测", "check_passed": "全部检测通过",
        "submitted": "上线单 #{id} 已提交。", "pending": "待审核",
        "waiting_for": "等待 {group} 中提交人以外的维护者或所有者审核。",
        "approve": "审核通过", "approved_msg": "上线单已审核通过。", "approved": "已审核",
        "deploy": "部署", "deploy_queued": "部署已加入队列。", "succeeded": "成功",
        "roll_back": "回滚",
        "confirm_rollback": "现在回滚吗？本上线单切换过的主机会立即回退。",
        "rolling_back": "正在回滚：上线单 #{id} 运行中。",
    },
}


@dataclass
class Story:
    """One run of the story: its language, texts and screenshot folder."""

    language: str
    texts: dict[str, str]
    shots: Path
    base: str
    count: int = 0
    used: set[str] = field(default_factory=set)  # the texts pressed or read
    shot_steps: set[int] = field(default_factory=set)

    def t(self, key: str, **fields: object) -> str:
        self.used.add(key)
        return self.texts[key].format(**fields)

    def next_shot(self, step: int, name: str) -> Path:
        """The next numbered screenshot's path, tagged with its tour step."""
        self.count += 1
        self.shot_steps.add(step)
        return self.shots / f"{self.count:02d}-step{step}-{name}.png"

    def shot(self, page: Page, step: int, name: str) -> None:
        page.screenshot(path=str(self.next_shot(step, name)), full_page=True)


@dataclass
class Stage:
    """What exists outside Walle: the machines and the repository."""

    hosts: list  # tests.infra TargetHost
    git_server: object
    repo: str
    v1: str  # the commit of the first index.html


@pytest.fixture
def stage(transactional_db, hosts, git_server, settings, tmp_path) -> Stage:
    """What exists before anyone opens a page: the first admin (bin/start makes
    it), the default environments, real hosts and a repository holding v1,
    as the walkthrough's developer committed it (3.2.2.5)."""
    settings.WALLE_WORKSPACE_ROOT = tmp_path / "workspaces"
    ensure_defaults()  # transactional tests flush the rows the data migration made
    helpers.make_user("admin", superuser=True)
    repo = f"website-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(repo)
    v1 = git_server.commit(repo, {"index.html": PAGE.format(V1_TEXT)}, "v1")
    return Stage(list(hosts), git_server, repo, v1)


@pytest.fixture
def worker(stage, qcluster):
    # After ``stage``: the worker process reads the workspace root it sets.
    return qcluster


def messages(page: Page):
    return page.locator("ul.messagelist")


def press(page: Page, label: str) -> None:
    """Press the one enabled button with this visible label."""
    page.get_by_role("button", name=label, exact=True).and_(page.locator(":enabled")).click()


def admin_add(page: Page, story: Story, model: str) -> None:
    """From the admin index, press the model's "Add" link, as a person does."""
    page.goto(f"{story.base}/admin/")
    page.click(f'a.addlink[href$="/admin/{model}/add/"]')
    page.wait_for_url(re.compile(rf".*/admin/{model}/add/$"))


def add_user(page: Page, story: Story, username: str) -> None:
    admin_add(page, story, "accounts/useraccount")
    page.fill("#id_username", username)
    page.fill("#id_password1", helpers.PASSWORD)
    page.fill("#id_password2", helpers.PASSWORD)
    page.click("input[name=_save]")
    expect(messages(page)).to_contain_text(story.t("user_added", name=username))


def add_group(page: Page, story: Story, name: str, members: dict[str, str]) -> None:
    """The group with its members and their roles, in one save (tour step 1)."""
    admin_add(page, story, "accounts/team")
    page.fill("#id_name", name)
    for n, (username, role) in enumerate(members.items()):
        if n:
            page.click("#memberships-group .add-row a")
        page.select_option(f"#id_memberships-{n}-user", label=username)
        page.select_option(f"#id_memberships-{n}-role", label=role)
    page.click("input[name=_save]")
    expect(messages(page)).to_contain_text(story.t("group_added", name=name))


def add_project(page: Page, story: Story, name: str, group: str, repo_url: str, hosts: list) -> int:
    """Tour step 2: name (the slug follows), group, production, repository,
    the three hosts pasted one a line, the webroot; saved, staying on its page."""
    admin_add(page, story, "projects/project")
    expect(page.locator("#content h1")).to_contain_text(story.t("project"))  # "Add project"
    page.fill("#id_name", name)
    page.locator("#id_name").blur()
    expect(page.locator("#id_slug")).to_have_value(name)
    page.select_option("#id_team", label=group)
    page.select_option("#id_environment", label="production")
    page.fill("#id_repo_url", repo_url)
    page.fill("#id_host_lines", "\n".join(h.address for h in hosts))
    page.fill("#id_webroot", "/data/nginx/website")
    page.click("input[name=_continue]")
    expect(messages(page)).to_contain_text(story.t("project_added", name=name))
    expect(messages(page)).to_contain_text(story.t("hosts_linked", hosts=", ".join(h.address for h in hosts)))
    return int(re.search(r"/project/(\d+)/change/", page.url).group(1))


def open_secrets(page: Page, story: Story, name: str) -> None:
    """The project's Secrets page (tour step 2); this story's hooks need none."""
    page.get_by_role("link", name=story.t("secrets"), exact=True).click()
    expect(page.locator("#content h1")).to_contain_text(story.t("secrets_title", name=name))
    page.go_back()


def install_deploy_key(page: Page) -> None:
    """Tour step 3: the person copies the authorized_keys line the project page
    shows onto the targets' run user and the repository's git user."""
    line = page.locator("#authorized-keys-line").inner_text().strip()
    authorize_key("www", line)
    authorize_key("git", line)


def run_config_check(page: Page, story: Story, hosts: list) -> None:
    press(page, story.t("run_check"))
    expect(page.locator("#check-summary")).to_have_text(story.t("check_passed"))
    results = page.locator("#check-results")
    for host in hosts:
        expect(results).to_contain_text(host.address)
    expect(results.locator("tr.check-fail")).to_have_count(0)


def submit_ticket(page: Page, story: Story, site: Site, label: str, step: int) -> int:
    """Tour step 4, the Developer: the branch, the commit, the title; then the
    ticket waits for approval."""
    # open_ticket screenshots the filled form, before submitting, under ARTIFACTS.
    form_shot = story.next_shot(step, f"new-ticket-{label}").relative_to(ARTIFACTS)
    ticket = open_ticket(page, story.base, site, label, shot=str(form_shot), choose_project=True)
    expect(messages(page)).to_contain_text(story.t("submitted", id=ticket))
    expect(page.locator("#ticket-status .chip")).to_have_text(story.t("pending"))
    # Production: nobody approves their own ticket, and the page says whom it waits for.
    expect(page.locator("#waiting-for")).to_have_text(story.t("waiting_for", group="web"))
    story.shot(page, step, f"pending-{label}")
    return ticket


def approve_ticket(page: Page, story: Story, ticket: int, label: str) -> None:
    page.goto(f"{story.base}/tickets/{ticket}/")
    press(page, story.t("approve"))
    expect(page.locator("#ticket-status .chip")).to_have_attribute("data-status", Ticket.Status.APPROVED)
    expect(messages(page)).to_contain_text(story.t("approved_msg"))
    expect(page.locator("#ticket-status .chip")).to_have_text(story.t("approved"))
    story.shot(page, 4, f"approved-{label}")


def deploy_ticket(page: Page, story: Story, site: Site, ticket: int, label: str, text: str) -> None:
    page.goto(f"{story.base}/tickets/{ticket}/")
    press(page, story.t("deploy"))
    expect(messages(page)).to_contain_text(story.t("deploy_queued"))
    watch(page, succeeded=story.t("succeeded"))
    story.shot(page, 4, f"deployed-{label}")
    # What a visitor to the website now gets, from every host, over HTTP.
    assert all(text in body for body in site.pages()), site.pages()


def roll_back(page: Page, story: Story, site: Site, ticket: int) -> int:
    """Tour step 5: the Maintainer presses Roll back on the v2 ticket; in
    production rollbacks need no approval, so the confirmation runs it."""
    page.goto(f"{story.base}/tickets/{ticket}/")
    seen: list[str] = []
    page.once("dialog", lambda dialog: (seen.append(dialog.message), dialog.accept()))
    press(page, story.t("roll_back"))
    page.wait_for_url(re.compile(rf".*/tickets/(?!{ticket}/)\d+/$"))
    assert seen == [story.t("confirm_rollback")]
    rollback = int(page.url.rstrip("/").rsplit("/", 1)[1])
    expect(messages(page)).to_contain_text(story.t("rolling_back", id=rollback))
    back_to = site.project.releases.filter(commit=site.commits["v1"]).first().name
    expect(page.locator("h1")).to_contain_text(back_to)
    watch(page, succeeded=story.t("succeeded"))
    story.shot(page, 5, "rolled-back")
    wait_for(lambda: all(V1_TEXT in body for body in site.pages()), timeout=30)
    return rollback


def developer_logs_in(chromium: Browser, story: Story) -> Page:
    """The Developer's browser speaks English; in the Chinese story he picks
    简体中文 at the top of the page instead (kept on his account)."""
    page = log_in(chromium, story.base, "developer", locale=TEXTS["en"]["locale"])
    if story.language != "en":
        page.select_option("#language-switch select", label=story.t("language_name"))
        page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", story.t("html_lang"))
    return page


def new_story(language: str, base: str, capsys) -> Story:
    shots = ARTIFACTS / f"seed-story-{language}"
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()  # a folder of this run's steps only
    with capsys.disabled():
        print(f"\nseed story ({language}) screenshots: {shots}")
    return Story(language, TEXTS[language], shots, base)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_seed_story_through_the_pages(language, stage, worker, live_server, browser,  # noqa: F811
                                          monkeypatch, capsys):
    # Each "Refresh from repository" must queue a fetch, however soon after the last one.
    monkeypatch.setattr(fetching, "REFRESH_INTERVAL", timedelta(0))
    hosts, git_server, repo = stage.hosts, stage.git_server, stage.repo
    story = new_story(language, live_server.url, capsys)
    locale = story.t("locale")

    # 1. The admin, in the browser's language: the two people, then their group with roles.
    admin = log_in(browser, story.base, "admin", locale=locale, at="/admin/")
    expect(admin.locator("html")).to_have_attribute("lang", story.t("html_lang"))
    expect(admin.locator(".app-accounts caption")).to_contain_text(story.t("accounts"))
    expect(admin.locator(".app-accounts .model-useraccount th")).to_contain_text(story.t("users"))
    expect(admin.locator(".app-accounts .model-team th")).to_contain_text(story.t("group"))
    story.shot(admin, 1, "admin")
    add_user(admin, story, "developer")
    add_user(admin, story, "maintainer")
    story.shot(admin, 1, "users")
    add_group(admin, story, "web", {"developer": story.t("developer"), "maintainer": story.t("maintainer")})
    story.shot(admin, 1, "group")

    # 2. The production project on the three hosts; its Secrets page.
    project_id = add_project(admin, story, repo, "web", git_server.url(repo), hosts)
    story.shot(admin, 2, "project")
    open_secrets(admin, story, repo)

    # 3. The group's key on the hosts and the repository, then the config check (检测).
    install_deploy_key(admin)
    run_config_check(admin, story, hosts)
    story.shot(admin, 3, "config-check")

    project = Project.objects.get(pk=project_id)
    site = Site(project, hosts, list(project.hosts.order_by("address")), git_server, repo, commits={"v1": stage.v1})

    # 4. v1: the Developer opens the ticket, the Maintainer approves, the Developer deploys.
    dev = developer_logs_in(browser, story)
    boss = log_in(browser, story.base, "maintainer", locale=locale)
    first = submit_ticket(dev, story, site, "v1", 4)
    approve_ticket(boss, story, first, "v1")
    deploy_ticket(dev, story, site, first, "v1", V1_TEXT)

    # 4 again: v2 (the walkthrough's 3.2.4.1), the same way.
    site.push("v2", V2_TEXT)
    second = submit_ticket(dev, story, site, "v2", 4)
    approve_ticket(boss, story, second, "v2")
    deploy_ticket(dev, story, site, second, "v2", V2_TEXT)

    # 5. Something is wrong with v2: the Maintainer rolls back to v1.
    rollback = roll_back(boss, story, site, second)
    assert Ticket.objects.get(pk=rollback).rollback_of_id == second
    dev.goto(f"{story.base}/")
    expect(dev.locator("#live")).to_contain_text(site.commits["v1"][:8])
    story.shot(dev, 5, "dashboard")

    # The README's walked steps are what this story did: each name it lists was
    # pressed or read, and each step has its screenshot.
    assert {key for keys in STEP_NAMES.values() for key in keys} <= story.used
    assert story.shot_steps == set(TOUR_STEPS)
