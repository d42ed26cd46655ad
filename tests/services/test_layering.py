"""The layers import downward only, the service layer knows nothing of HTTP, and the
controllers reach the database only through the services."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: top to bottom; a layer may import the layers after it
ORDER = ["app", "controllers", "services", "thread_layer", "project_library", "integration",
         "cloud_storage"]
#: usable from every layer above them (and from each other, downward in this order)
SHARED = ["logging_layer", "entity", "exception_layer"]
#: known exceptions, each with its reason
ALLOWED: set[tuple[str, str]] = set()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _allowed(layer: str) -> set[str]:
    if layer in ORDER:
        return set(ORDER[ORDER.index(layer):]) | set(SHARED)
    return set(SHARED[SHARED.index(layer):])


@pytest.mark.parametrize("layer", ORDER + SHARED)
def test_layers_import_downward_only(layer):
    ours = set(ORDER + SHARED)
    wrong = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for name in _imports(path) & ours - _allowed(layer):
            if (layer, name) not in ALLOWED:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def test_the_service_layer_knows_nothing_of_http():
    # (werkzeug.security's password hashing is no HTTP; its request objects would be)
    http = {"flask", "flask_login", "flask_wtf", "flask_socketio", "flask_mail"}
    wrong = [f"{path.relative_to(ROOT)} imports {name}"
             for path in sorted((ROOT / "services").rglob("*.py"))
             for name in _imports(path) & http]
    assert not wrong, wrong


def test_controllers_reach_no_entity_store():
    """No ``services().db.<store>`` nor a repository: the services read and write."""
    store_use = re.compile(r"\.db\b|\bDatabase\b|_store\b|\.resolver\b|\.runner\b|"
                           r"\.model_server\b|\.box\b")
    wrong = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "controllers").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if store_use.search(line) and not line.lstrip().startswith("#")]
    assert not wrong, wrong
