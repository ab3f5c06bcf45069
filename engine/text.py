"""Texts meant for people, marked for translation without importing Django.

The engine never imports Django, so it cannot translate. It marks what a person
reads with ``N_`` (``manage.py makemessages`` extracts the ``N_`` keyword) and
keeps the template apart from its values, so the Django side translates the
template and fills it in where it shows the text (``projects/config_check.py``).
"""

from __future__ import annotations


class Text(str):
    """The English text, plus the template and values it was made from.

    A ``str`` subclass, so every existing use (logs, the API, comparisons) keeps
    reading the English sentence.
    """

    template: str
    params: dict[str, object]

    def __new__(cls, template: str, params: dict[str, object]) -> Text:
        text = super().__new__(cls, template.format(**params) if params else template)
        text.template = template
        text.params = params
        return text

    def __reduce__(self) -> tuple[type[Text], tuple[str, dict[str, object]]]:
        # Pickled (e.g. into a task result) as what it is, not as a bare str.
        return (Text, (self.template, self.params))


def N_(template: str, **params: object) -> Text:  # noqa: N802 (the gettext convention makemessages looks for)
    """Mark ``template`` (a literal, with ``{name}`` placeholders) for translation."""
    return Text(template, params)
