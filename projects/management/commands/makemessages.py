"""Django's makemessages, set up for Walle (docs/i18n.md).

- The engine marks its texts with ``N_`` (it never imports Django), so that
  keyword is extracted too.
- Only Walle's own code and templates are read (an allow-list: its apps,
  ``engine``, ``walleproj``, ``templates``), never whatever else lies below the
  working directory: the virtualenv, tests, benchmarks, and above all a data
  dir or workspace holding hostile repositories, whose strings must never
  reach the catalogue maintainers translate.
- Locations are kept to the file (no line numbers), so a catalogue does not
  change when code merely moves.
- ``--output-dir`` writes the catalogue somewhere else, so a test can extract
  the strings of the code as it is and compare them with the committed one.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.commands import makemessages

IGNORED = ["*/migrations/*"]


def walle_sources() -> list[Path]:
    """Walle's apps (those inside the project), the engine, settings and templates."""
    base = Path(settings.BASE_DIR)
    # Walle's apps are the project's top-level packages (a virtualenv inside
    # the checkout holds other apps below it, deeper down).
    own = {Path(app.path) for app in apps.get_app_configs() if Path(app.path).parent == base}
    return sorted(own | {base / "engine", base / "walleproj", base / "templates"})


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=N_"]

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--output-dir", default="", help="Write <dir>/<locale>/LC_MESSAGES/ instead of locale/.")

    def handle(self, *args, **options) -> None:
        options["ignore_patterns"] = [*options["ignore_patterns"], *IGNORED]
        options["add_location"] = options["add_location"] or "file"
        self.output_dir = options["output_dir"]
        super().handle(*args, **options)

    def build_potfiles(self) -> list[str]:
        if self.output_dir:
            self.locale_paths = [self.output_dir]  # where the .pot is looked for and written
            self.default_locale_path = self.output_dir
        return super().build_potfiles()

    def find_files(self, root: str) -> list[makemessages.TranslatableFile]:
        base = Path(settings.BASE_DIR)
        files = []
        for source in walle_sources():
            files += super().find_files(os.path.join(root, str(source.relative_to(base))))
        if self.output_dir:
            for file in files:
                file.locale_dir = self.output_dir
        return files
