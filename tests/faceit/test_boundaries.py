"""``faceit/`` imports nothing from the layers above it (docs/design.md: arrows point one way)."""

from __future__ import annotations

import ast
from pathlib import Path

FACEIT = Path(__file__).resolve().parents[2] / "faceit"
FORBIDDEN = {"queues", "actors", "middleware", "bot", "dashboard", "sandbox", "tests"}


def test_faceit_imports_no_upper_layer() -> None:
    offenders = []
    for path in sorted(FACEIT.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_no_pickle_and_no_print_in_the_library() -> None:
    for path in sorted(FACEIT.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "import pickle" not in text, path.name
        assert not [line for line in text.splitlines() if line.strip().startswith("print(")], path.name
