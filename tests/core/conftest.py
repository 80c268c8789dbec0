"""Hooks for the core tests."""

from __future__ import annotations

import pytest

from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import HashingEmbedder
from lexintel_core.search import SearchService
from lexintel_core.settings import Settings
from tests.core import search_report


@pytest.fixture
def embedder(settings: Settings) -> HashingEmbedder:
    """The deterministic test embedder (test_search_plans.py has a module-wide one)."""
    return HashingEmbedder(settings.embedding_dimension)


@pytest.fixture
def service(
    sessions: SessionFactory, embedder: HashingEmbedder, settings: Settings
) -> SearchService:
    """The search service over the test database."""
    return SearchService(sessions, embedder, settings)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show the retrieval-quality table of test_search_quality.py in every run that has it."""
    if search_report.LINES:
        terminalreporter.write_sep("=", search_report.TITLE)
        for line in search_report.LINES:
            terminalreporter.write_line(line)
