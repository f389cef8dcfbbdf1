"""SECURITY.md names, for each threat, the tests that cover it: those tests must exist."""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT


def test_every_test_named_in_security_md_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text))
    assert len(named) > 40
    missing = []
    for path, name in sorted(named):
        tree = ast.parse((ROOT / path).read_text())
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, missing
