"""Translation helpers shared by Walle's apps (docs/i18n.md).

Two rules live here: a text the engine marked with ``engine.text.N_`` is
translated where a person reads it (``translate``), and a text saved on a
record is written in the installation's language, whoever's request wrote it
(``stored``): people reading the timeline, the audit log, the API or a
notification later may read another language than the one who acted.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from engine.text import Text


def translate(text: str) -> str:
    """A text the engine marked (with its values filled in), translated; any other text as it is."""
    if not isinstance(text, Text):
        return text
    params = {name: translate(value) if isinstance(value, str) else value for name, value in text.params.items()}
    return gettext(text.template).format(**params)


def stored(message: str, /, **values: object) -> str:
    """``message`` (marked with ``gettext_noop``) in WALLE_LANGUAGE, with
    ``values`` filled in: for notes, titles and errors saved on records."""
    with translation.override(settings.LANGUAGE_CODE):
        text = gettext(message)
    return text % values if values else text
