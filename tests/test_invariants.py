"""Every security invariant of docs/design.md that the suite must prove (1, 2, 3 and 5
here; 4, 6 and 7 have their own test modules) is named by at least one test anywhere in
the tree, through ``@pytest.mark.invariant(n)``; this lists them and fails when one has
none."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def _marked() -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and ast.unparse(decorator.func) == "pytest.mark.invariant"
                ):
                    found[ast.literal_eval(decorator.args[0])].append(
                        f"{path.relative_to(TESTS)}::{node.name}"
                    )
    return found


@pytest.mark.parametrize("invariant", [1, 2, 3, 5])
def test_the_invariant_is_proved_by_named_tests(invariant):
    proofs = _marked()[invariant]
    assert proofs, f"no test is marked @pytest.mark.invariant({invariant})"
