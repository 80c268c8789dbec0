"""Hooks for the core tests."""

from __future__ import annotations

import pytest

from tests.core import search_report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show the retrieval-quality table of test_search_quality.py in every run that has it."""
    if search_report.LINES:
        terminalreporter.write_sep("=", search_report.TITLE)
        for line in search_report.LINES:
            terminalreporter.write_line(line)
