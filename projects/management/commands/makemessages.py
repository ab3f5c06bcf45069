"""Django's makemessages, set up for Walle (docs/i18n.md).

- The engine marks its texts with ``N_`` (it never imports Django), so that
  keyword is extracted too.
- Only Walle's own code and templates are read: not the virtualenv, the tests,
  benchmarks, the data dir or the docs.
- Locations are kept to the file (no line numbers), so a catalogue does not
  change when code merely moves.
- ``--output-dir`` writes the catalogue somewhere else, so a test can extract
  the strings of the code as it is and compare them with the committed one.
"""

from __future__ import annotations

from django.core.management.commands import makemessages

IGNORED = ["venv", "*/migrations/*", "tests", "bench", "var", "docs", "deploy", "node_modules", "static"]


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

    def build_potfiles(self):
        if self.output_dir:
            self.locale_paths = [self.output_dir]  # where the .pot is looked for and written
            self.default_locale_path = self.output_dir
        return super().build_potfiles()

    def find_files(self, root):
        files = super().find_files(root)
        if self.output_dir:
            for file in files:
                file.locale_dir = self.output_dir
        return files
