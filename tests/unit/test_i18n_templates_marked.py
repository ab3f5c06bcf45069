"""Every visible text in Walle's templates is marked for translation (issue 10).

Each template under templates/ is read with Django's own template lexer: what
{% translate %}, {% blocktranslate %}, variables and other tags produce is
replaced by a placeholder, and the HTML left over is parsed. Letters in a
text node, or in an attribute people read (title, placeholder, aria-label,
alt, a button's value), mean an unmarked string.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from django.template.base import Lexer, TokenType

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
PLACEHOLDER = "\x01"
# Words that read the same in every language: the brand, protocol names, units.
ALLOWED_WORDS = {"Walle", "walle", "HTTP", "s"}
HUMAN_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}
BUTTON_TYPES = {"submit", "button", "reset"}


def without_marked_text(source: str) -> str:
    """The template's HTML with every tag, variable and translated text replaced by a placeholder."""
    out, depth = [], 0
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            word = token.contents.split()[0]
            # Translated blocks and {% comment %} blocks: nothing in them is unmarked page text.
            depth += word in {"blocktranslate", "blocktrans", "comment"}
            depth -= word in {"endblocktranslate", "endblocktrans", "endcomment"}
            # A tag between words may become words itself; keep the two sides apart.
            out.append(" " if word not in {"translate", "trans"} else PLACEHOLDER)
        elif token.token_type == TokenType.VAR:
            # A literal a filter shows ({{ x|default:"none" }}) is page text too; _("...") marks it.
            literals = re.findall(r"\|(?:default|default_if_none|yesno):([\"'])(.*?)\1", token.contents)
            out.append(PLACEHOLDER + " ".join(text for _quote, text in literals))
        elif token.token_type == TokenType.TEXT and not depth:
            out.append(token.contents)
    return "".join(out)


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.skip = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self.skip += 1
        values = dict(attrs)
        for name, value in attrs:
            is_button_label = name == "value" and tag in {"input", "button"} and values.get("type") in BUTTON_TYPES
            if (name in HUMAN_ATTRIBUTES or is_button_label) and has_words(value or ""):
                self.found.append(f'<{tag} {name}="{value}">')

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data: str) -> None:
        if not self.skip and has_words(data):
            self.found.append(data.replace(PLACEHOLDER, " ").strip())


def has_words(text: str) -> bool:
    return any(word not in ALLOWED_WORDS for word in re.findall(r"[^\W\d_]+", text.replace(PLACEHOLDER, " ")))


def unmarked_texts(source: str) -> list[str]:
    finder = _Finder()
    finder.feed(without_marked_text(source))
    finder.close()
    return finder.found


def test_template_texts_meant_for_people_are_marked_for_translation():
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        problems += [f"{path.relative_to(ROOT)}: {text!r}" for text in unmarked_texts(path.read_text())]
    assert not problems, "\n".join(problems)


def test_the_template_scan_finds_unmarked_text():
    # The scan must see what it is meant to catch, or the test above proves nothing.
    source = (
        '{% load i18n %}<h1>{% translate "Tickets" %}</h1><p>Back to the project</p>'
        '<input type="submit" value="Filter"><a title="Open it" href="{{ url }}">{{ name }}</a>'
        "{% blocktranslate %}Page {{ n }}{% endblocktranslate %}<td>{% if x %}PASS{% endif %}</td>"
        "<p>{{ host|default:'deploy host' }}</p><p>{{ who|default:_('nobody') }}</p>"
        '<select aria-label="{% translate "Language" %}"></select><style>a { color: red }</style>'
    )
    assert unmarked_texts(source) == ["Back to the project", '<input value="Filter">', '<a title="Open it">', "PASS", "deploy host"]
