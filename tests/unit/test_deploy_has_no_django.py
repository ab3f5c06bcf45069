"""engine must stay plain Python: the engine runs and is tested without Django."""

from __future__ import annotations

import ast
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "engine"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.update(arg.value for arg in node.args if isinstance(arg, ast.Constant))
    return names


def test_deploy_package_has_modules_to_check() -> None:
    assert {"pipeline.py", "ssh.py", "git.py", "plan.py"} <= {p.name for p in DEPLOY_DIR.glob("*.py")}


def test_no_module_of_the_engine_imports_django() -> None:
    offenders = {
        path.name: sorted(name for name in _imported_modules(path) if name.split(".")[0] == "django")
        for path in sorted(DEPLOY_DIR.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_no_module_reaches_into_django_apps() -> None:
    # The engine gets plain values; it never imports the Django apps either.
    apps = {"accounts", "projects", "walleproj", "releases"}
    for path in DEPLOY_DIR.glob("*.py"):
        for name in _imported_modules(path):
            assert not any(name == app or name.startswith(app + ".") for app in apps), (path.name, name)
