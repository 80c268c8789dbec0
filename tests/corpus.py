"""The shared test corpora (real files nobody on this project wrote), found beside the project.

A user's clone has no `../shared`: tests that need it are skipped there, with how to run them.
In CI (CI=true) the corpus is always present, so a missing one fails instead of skipping.
Point LEXINTEL_TEST_CORPUS at a copy elsewhere (the folder that holds pdf-samples/,
court-filings/, regressions/ and formats/).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.tools import unavailable

ROOT = Path(__file__).resolve().parents[1]
CORPUS_ENV = "LEXINTEL_TEST_CORPUS"


def corpus_root() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or ROOT.parent / "shared/corpus")


def corpus_path(*parts: str) -> Path:
    """The path of `parts` inside the corpus; skips the calling test (fails it in CI) when
    the corpus is not there."""
    root = corpus_root()
    path = root.joinpath(*parts)
    if not root.is_dir():
        unavailable(
            f"needs the shared test corpus, not found at {root}: put it at ../shared/corpus "
            f"beside the project or set {CORPUS_ENV} to its folder"
        )
    if not path.exists():
        unavailable(f"needs {path}, missing from the shared test corpus at {root}")
    return path
