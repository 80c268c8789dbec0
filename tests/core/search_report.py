"""Lines that tests/core/test_search_quality.py adds to the pytest terminal summary (printed by
the `pytest_terminal_summary` hook in tests/core/conftest.py, so they show without `-s`)."""

from __future__ import annotations

TITLE = "search retrieval quality"
LINES: list[str] = []
