"""Every Python string meant for people is marked for translation (issue 10).

An AST walk over Walle's own apps (the real files, found on disk) looks at the
places where text reaches a person: messages.*, ValidationError and the
exceptions raised to people, verbose_name/help_text/label/description keyword
arguments, Meta verbose names, choices labels, admin short_description, and the
results and fix hints of the engine's config check. A literal there (or an
f-string, or a literal formatted in place) fails the test; a call to gettext
(or the engine's ``N_`` marker) passes; a variable is trusted, since its text
was marked where it was written.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.checks import CHECK_NAMES

ROOT = Path(__file__).resolve().parents[2]
APPS = ["accounts", "projects", "releases", "audit", "notifications", "webhooks", "walleproj", "ops"]
# Operator output of management commands and migrations' frozen copies are not pages.
SKIP_PARTS = {"migrations", "management", "__pycache__"}

MARKERS = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy",
           "npgettext", "npgettext_lazy", "format_lazy", "N_"}
HUMAN_KEYWORDS = {"verbose_name", "verbose_name_plural", "help_text", "label", "description",
                  "short_description", "empty_label", "empty_value_display", "detail"}
# Exceptions whose text is shown to people; subclasses found in the code count too.
PEOPLE_EXCEPTIONS = {"ValidationError", "PermissionDenied", "WorkflowError", "APIException",
                     "AuthenticationFailed", "NotAuthenticated", "ParseError", "NotFound", "Throttled"}
ASSIGNED_TEXT = {"short_description", "default_detail"}
MESSAGE_FUNCS = {"debug", "info", "success", "warning", "error"}
# The API's schema documentation is for script writers and stays English, like
# the API's field names; its error details are translated (the exceptions above).
SCHEMA_DOCS = {"OpenApiParameter", "OpenApiExample", "OpenApiResponse", "extend_schema"}
RELATIONS = {"ForeignKey", "OneToOneField", "ManyToManyField"}
CHOICES_BASES = {"TextChoices", "IntegerChoices", "Choices"}
# Brand names read the same in every language.
BRANDS = {"GitHub", "GitLab", "Gitea", "Walle"}


def python_files(apps: list[str]) -> list[Path]:
    files = []
    for app in apps:
        for path in sorted((ROOT / app).rglob("*.py")):
            if not SKIP_PARTS.intersection(path.relative_to(ROOT).parts):
                files.append(path)
    return files


def name_of(node: ast.AST) -> str:
    """The last name of a call target or base: ``forms.ValidationError`` -> "ValidationError"."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return name_of(node.func)
    return ""


def is_unmarked(node: ast.AST | None) -> bool:
    """True if ``node`` is text written here and not passed through a marker."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        text = node.value
        return isinstance(text, str) and any(ch.isalpha() for ch in text) and text not in BRANDS
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.Constant) and any(ch.isalpha() for ch in v.value) for v in node.values)
    if isinstance(node, ast.BinOp):  # "literal %s" % x, "a" + b
        return is_unmarked(node.left) or is_unmarked(node.right)
    if isinstance(node, ast.Call):
        if name_of(node.func) in MARKERS:
            return False
        if isinstance(node.func, ast.Attribute) and node.func.attr == "format":  # "literal {x}".format(...)
            return is_unmarked(node.func.value)
        return False
    if isinstance(node, ast.IfExp):
        return is_unmarked(node.body) or is_unmarked(node.orelse)
    if isinstance(node, ast.Dict):
        return any(is_unmarked(v) for v in node.values)
    if isinstance(node, (ast.List, ast.Tuple)):  # ValidationError({"field": ["text"]})
        return any(is_unmarked(e) for e in node.elts)
    return False


def has_words_outside_markup(node: ast.AST) -> bool:
    """A format_html() template with words between its tags (not in its {} holes)."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return is_unmarked(node) if not isinstance(node, ast.Constant) else False
    text = re.sub(r"<[^>]*>|\{[^}]*\}|&\w+;", " ", node.value)
    return any(ch.isalpha() for ch in text)


def people_exceptions(trees: dict[Path, ast.Module]) -> set[str]:
    """PEOPLE_EXCEPTIONS plus every class in the code that derives from one of them."""
    found = set(PEOPLE_EXCEPTIONS)
    classes = [n for tree in trees.values() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name not in found and any(name_of(b) in found for b in cls.bases):
                found.add(cls.name)
                changed = True
    return found


def call_problems(node: ast.Call, exceptions: set[str]) -> Iterator[tuple[int, str]]:
    func = name_of(node.func)
    owner = node.func.value if isinstance(node.func, ast.Attribute) else None
    documents_api = func in SCHEMA_DOCS or name_of(owner) == "serializers"
    for keyword in node.keywords:
        if documents_api and keyword.arg in {"help_text", "description"}:
            continue
        if keyword.arg in HUMAN_KEYWORDS and is_unmarked(keyword.value):
            yield node.lineno, f"{keyword.arg}= of {func}()"
        if keyword.arg in {"choices", "error_messages"}:
            yield from literal_choices(keyword.value, f"{keyword.arg}= of {func}()")
    if func in MESSAGE_FUNCS and name_of(owner) == "messages" and len(node.args) > 1:
        if is_unmarked(node.args[1]):
            yield node.lineno, f"messages.{func}()"
    if func == "format_html" and node.args and has_words_outside_markup(node.args[0]):
        yield node.lineno, "text in format_html()"
    if func == "message_user" and len(node.args) > 1 and is_unmarked(node.args[1]):
        yield node.lineno, "message_user()"
    if func in exceptions and node.args and is_unmarked(node.args[0]):
        yield node.lineno, f"{func}()"
    if func.endswith("Field") and func not in RELATIONS and name_of(owner) == "models" and node.args:
        if is_unmarked(node.args[0]):  # a model field's first positional argument is its verbose_name
            yield node.lineno, f"verbose name of models.{func}()"


def literal_choices(node: ast.AST, where: str) -> Iterator[tuple[int, str]]:
    if isinstance(node, (ast.List, ast.Tuple)):
        for item in node.elts:
            if isinstance(item, (ast.Tuple, ast.List)) and len(item.elts) == 2 and is_unmarked(item.elts[1]):
                yield item.lineno, where
    if isinstance(node, ast.Dict) and is_unmarked(node):
        yield node.lineno, where


def assignment_problems(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        is_choices = any(name_of(b) in CHOICES_BASES for b in cls.bases)
        for stmt in cls.body:
            if not isinstance(stmt, ast.Assign):
                continue
            targets = {name_of(t) for t in stmt.targets}
            # A model's Meta, an AppConfig: the names the admin shows.
            if targets & {"verbose_name", "verbose_name_plural"} and is_unmarked(stmt.value):
                yield stmt.lineno, f"{cls.name}.{targets.pop()}"
            if is_choices and isinstance(stmt.value, ast.Tuple) and len(stmt.value.elts) == 2:
                if is_unmarked(stmt.value.elts[1]):
                    yield stmt.lineno, f"label of {cls.name}.{targets.pop()}"
    for node in ast.walk(tree):  # view.short_description = "...", an APIException's default_detail
        if isinstance(node, ast.Assign) and any(name_of(t) in ASSIGNED_TEXT for t in node.targets):
            if is_unmarked(node.value):
                yield node.lineno, ", ".join(name_of(t) for t in node.targets)
        if isinstance(node, ast.Dict):  # a page's title in a template context
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "title" and is_unmarked(value):
                    yield node.lineno, '"title" of a context'


def unlabelled_form_fields(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """A form field declared without label= shows its Python name, which no catalogue translates."""
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            call = stmt.value if isinstance(stmt, ast.Assign) else None
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                continue
            if name_of(call.func.value) != "forms" or not call.func.attr.endswith("Field"):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            hidden = "HiddenInput" in ast.dump(keywords.get("widget", ast.Constant(None)))
            if "label" not in keywords and not hidden:
                yield stmt.lineno, f"{cls.name}.{name_of(stmt.targets[0])} (no label=)"


def problems_in(path: Path, tree: ast.Module, exceptions: set[str]) -> list[str]:
    found = [p for node in ast.walk(tree) if isinstance(node, ast.Call) for p in call_problems(node, exceptions)]
    found += assignment_problems(tree)
    found += unlabelled_form_fields(tree)
    rel = path.relative_to(ROOT)
    lines = path.read_text().splitlines() if path.is_file() else []
    # An explicit exemption names its reason on the line: "# i18n-exempt: <why>".
    exempt = {n for n, text in enumerate(lines, start=1) if "# i18n-exempt:" in text}
    return [f"{rel}:{line}: {what} is not marked for translation" for line, what in sorted(set(found))
            if line not in exempt]


def engine_check_problems() -> list[str]:
    """engine/checks.py: every message and fix of a result is N_()-marked (engine never imports Django)."""
    path = ROOT / "engine" / "checks.py"
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and name_of(node.func) in {"CheckResult", "_fail"}:
            texts = node.args[3:5] if name_of(node.func) == "CheckResult" else node.args[2:4]
            texts += [k.value for k in node.keywords if k.arg in {"message", "fix"}]
            # The name is a literal listed in CHECK_NAMES, where makemessages finds it.
            name = node.args[0] if node.args else None
            passed_on = isinstance(name, ast.Name) and name.id == "name"  # _fail() hands its caller's name on
            if not passed_on and not (isinstance(name, ast.Constant) and name.value in CHECK_NAMES):
                found.append(f"engine/checks.py:{node.lineno}: a check name that is not a literal in CHECK_NAMES")
            found += [f"engine/checks.py:{node.lineno}: a check text is not N_()-marked"
                      for text in texts if is_unmarked(text)]
        if isinstance(node, ast.Call) and name_of(node.func) == "N_":
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                found.append(f"engine/checks.py:{node.lineno}: N_() takes a literal (makemessages reads it)")
    return found


@pytest.fixture(scope="module")
def trees() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in python_files(APPS)}


def test_python_strings_meant_for_people_are_marked_for_translation(trees):
    exceptions = people_exceptions(trees)
    problems = [p for path, tree in trees.items() for p in problems_in(path, tree, exceptions)]
    assert not problems, "\n".join(problems)


def test_config_check_results_and_fix_hints_are_marked_in_the_engine():
    assert not engine_check_problems(), "\n".join(engine_check_problems())


def test_the_scan_finds_an_unmarked_string():
    # The scan itself must see what it is meant to catch, or the tests above prove nothing.
    source = (
        "from django.contrib import messages\n"
        "class Meta:\n    verbose_name = 'ticket'\n"
        "class Status(TextChoices):\n    DRAFT = 'draft', 'Draft'\n"
        "class Oops(WorkflowError):\n    pass\n"
        "def view(request, x):\n"
        "    messages.success(request, f'Saved {x}')\n"
        "    raise Oops('no')\n"
        "    forms.CharField(label='Name', help_text=_('ok'))\n"
        "    models.CharField('title', max_length=3)\n"
        "    view.short_description = 'Approve'\n"
        "    self.message_user(request, 'Done')\n"
        "    return {'title': 'Approve these?'}\n"
        "class F(forms.Form):\n    name = forms.CharField(max_length=3)\n"
        "    seen = forms.IntegerField(widget=forms.HiddenInput)\n"
        "format_html('<p>Fingerprint: <code>{}</code></p>', fp)\n"
        "format_html('<a href=\"{}\">{}</a>', url, _('Open'))\n"
    )
    tree = ast.parse(source)
    found = problems_in(ROOT / "x.py", tree, people_exceptions({ROOT / "x.py": tree}))
    assert found == [
        "x.py:3: Meta.verbose_name is not marked for translation",
        "x.py:5: label of Status.DRAFT is not marked for translation",
        "x.py:9: messages.success() is not marked for translation",
        "x.py:10: Oops() is not marked for translation",
        "x.py:11: label= of CharField() is not marked for translation",
        "x.py:12: verbose name of models.CharField() is not marked for translation",
        "x.py:13: short_description is not marked for translation",
        "x.py:14: message_user() is not marked for translation",
        'x.py:15: "title" of a context is not marked for translation',
        "x.py:17: F.name (no label=) is not marked for translation",
        "x.py:19: text in format_html() is not marked for translation",
    ]  # the hidden field (18) and the marked link text (20) are not flagged
    marked = "messages.success(request, _('Saved %(x)s') % {'x': x})\nraise ValidationError(gettext('no'))\n"
    assert problems_in(ROOT / "y.py", ast.parse(marked), PEOPLE_EXCEPTIONS) == []
