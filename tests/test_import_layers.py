"""The layers of docs/architecture.md §3 hold: import-linter's contracts in pyproject.toml (no module imports from a
layer above it, no import circle between siblings)."""

import pathlib

import pytest

PYPROJECT = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_import_contracts_are_kept(capsys):
    cli = pytest.importorskip("importlinter.cli", reason="pip install 'fastsep[test]' brings import-linter")
    code = cli.lint_imports(config_filename=str(PYPROJECT), no_cache=True)
    assert code == 0, capsys.readouterr().out
