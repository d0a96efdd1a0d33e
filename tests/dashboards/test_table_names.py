"""The dashboards' SQL takes every table and view name from the registry (gateledger/tables.py): no
string in dashboards/ spells one where SQL would read it, so a rename is one line in the registry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import dashboards
from gateledger.tables import all_names

SOURCES = sorted(Path(dashboards.__file__).parent.glob("*.py"))
NAMES = "|".join(sorted(all_names(), key=len, reverse=True))
# Where SQL reads a name: after FROM / JOIN (optionally database-qualified), as a quoted literal (the
# rollups' source column holds table names), or qualified by the database.
SPELLED = re.compile(
    rf"\b(?:FROM|JOIN)\s+(?:\w+\.)?({NAMES})\b|'({NAMES})'|\bgateledger\.({NAMES})\b", re.IGNORECASE
)


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose about tables, not SQL)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def spelled_names(source: str) -> list[tuple[int, str]]:
    """(line, name) of each table or view name a string constant in ``source`` spells."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
            continue
        if node.value in all_names():  # a bare name passed to latest(), landings(), ...
            found.append((node.lineno, node.value))
        found += [(node.lineno, next(g for g in m.groups() if g)) for m in SPELLED.finditer(node.value)]
    return sorted(found)


def test_the_check_finds_names_spelled_in_sql() -> None:
    source = '''
"""Docstring about raw_events FROM mcp_calls: prose."""
A = latest("cost_ledger", "time")
B = f"SELECT 1 FROM dead_letters WHERE {A}"
C = "x JOIN gateledger.llm_calls AS l"
D = f"WHERE source = 'findings' AND kind = '{A}'"
E = f"SELECT llm_calls, findings AS n FROM {A}"  # columns and aliases that share a table's name
'''
    assert spelled_names(source) == [(3, "cost_ledger"), (4, "dead_letters"), (5, "llm_calls"), (6, "findings")]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_dashboard_source_spells_a_table_name(path: Path) -> None:
    assert spelled_names(path.read_text()) == [], f"{path.name}: use gateledger.tables.Table"
