"""The ``dynamix`` command line: the core never imports ``flows`` (not even by a string), and
the GX/MLflow subcommands arrive through the ``dynamix.commands`` entry-point group."""

from __future__ import annotations

import argparse
import ast
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import dynamix.cli
from dynamix.cli import ENTRY_POINT_GROUP, build_parser, main

CORE = Path(dynamix.cli.__file__).resolve().parent


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_the_core_never_imports_flows_or_the_tools():
    banned = ("flows", "prefect", "mlflow", "dvc", "great_expectations")
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # a module named in a string (importlib.import_module("flows.x")) counts too
                names = [node.value] if node.value.startswith("flows.") else []
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, f"{path}:{node.lineno} imports {name}"


def test_validate_track_and_promote_come_from_the_installed_entry_points():
    # `pip install -e .` writes the group from pyproject.toml; a stale install fails here
    commands = subcommands(build_parser())
    assert {"validate", "track", "promote"} <= set(commands)
    assert {"synth", "prepare", "train", "evaluate"} <= set(commands)
    assert commands.index("train") < commands.index("validate")  # core first, then plugins


def test_any_entry_point_in_the_group_adds_a_subcommand(monkeypatch, capsys):
    def register(subparsers) -> None:
        p = subparsers.add_parser("hello", help="a plugin command")
        p.set_defaults(func=lambda args: print("hello from a plugin") or 7)

    module = types.ModuleType("fake_plugin")
    module.register = register
    monkeypatch.setitem(sys.modules, "fake_plugin", module)
    plugin = EntryPoint("hello", "fake_plugin:register", ENTRY_POINT_GROUP)
    monkeypatch.setattr(dynamix.cli, "entry_points", lambda group: [plugin])
    assert "hello" in subcommands(build_parser())
    assert main(["hello"]) == 7
    assert "hello from a plugin" in capsys.readouterr().out


def test_without_entry_points_help_says_how_to_get_them(monkeypatch):
    monkeypatch.setattr(dynamix.cli, "entry_points", lambda group: [])
    parser = build_parser()
    assert "validate" not in subcommands(parser)
    assert "pip install -e ." in parser.format_help()
