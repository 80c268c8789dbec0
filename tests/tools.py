"""What a test needs beyond LexIntel's own dependencies: programs from Debian packages
(Tesseract, antiword, wpd2text), which no pip install brings, and the optional extras
(`pdfium`, `semantic`: scripts/test installs them, a bare `pip install -e '.[test]'` does not).

Call a helper first thing in the test (or in the fixture that needs the thing). When the
thing is missing it skips the test with a reason that says how to install it (`pytest -ra`
lists them), and in CI (CI=true), where `.ci/run` and the Docker image install everything, it
fails the test instead, so nothing is silently left out there:

    from tests.tools import require_binary, require_module

    async def test_a_scanned_page_is_read(...) -> None:
        require_binary("tesseract")                 # skip: "... apt-get install tesseract-ocr ..."
        ...

    @pytest.fixture
    def minilm() -> ...:
        require_module("sentence_transformers", extra="semantic")
        ...

`DEBIAN_PACKAGES` is the one table of the programs the code runs and the Debian packages that
install them; tests/e2e/test_docker.py checks it against the code, docker/Dockerfile and
.ci/run. A program the code starts to run goes into this table first.

`require_graphiql_assets()` does the same for GraphiQL's browser assets (React, GraphiQL), which
npm installs (scripts/_env runs `npm ci --prefix lexintel_api/graphiql`).

The shared test corpora (../shared/corpus) have their own helper: tests/corpus.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import NoReturn

import pytest

from lexintel_api.graphiql import INSTALL_COMMAND, missing_assets

# Program -> the Debian packages that install it (and the data it needs).
DEBIAN_PACKAGES: dict[str, tuple[str, ...]] = {
    "tesseract": ("tesseract-ocr", "tesseract-ocr-eng"),  # OCR of scanned pages, English
    "antiword": ("antiword",),  # Word 97-2003 .doc
    "wpd2text": ("libwpd-tools",),  # WordPerfect .wpd
}


def in_ci() -> bool:
    """Whether this is CI (CI=true, as CI services set it), where nothing may be missing."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(message: str) -> NoReturn:
    """Skip the calling test with `message`, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: everything must be installed here)", pytrace=False)
    skipped = pytest.skip.Exception(message)
    # `pytest -ra` names the skipped test, not this line (as for a skip in a fixture).
    skipped._use_item_location = True
    raise skipped


def require_binary(name: str, package: str | None = None) -> str:
    """The path of program `name`; skips (fails in CI) when it is not on PATH, naming the
    Debian package(s) to install (`package`, else the ones `DEBIAN_PACKAGES` gives)."""
    found = shutil.which(name)
    if found is None:
        packages = package or " ".join(DEBIAN_PACKAGES.get(name, (name,)))
        unavailable(
            f"needs the `{name}` program, not found on PATH: "
            f"sudo apt-get install {packages} (.ci/run and docker/Dockerfile install it)"
        )
    return found


# What to install before an extra (scripts/_env does it).
_BEFORE_EXTRA = {"semantic": "pip install torch==2.13.0 (the CPU build) first, then "}


def require_module(module: str, extra: str) -> None:
    """Skips (fails in CI) when `module`, which the LexIntel extra `extra` provides, is not
    installed. Looks without importing it (torch takes seconds to import)."""
    if importlib.util.find_spec(module) is None:
        unavailable(
            f"needs the `{extra}` extra ({module} is not installed): "
            f"{_BEFORE_EXTRA.get(extra, '')}pip install -e '.[test,{extra}]'; "
            "scripts/test installs it"
        )


def require_graphiql_assets() -> None:
    """Skips (fails in CI) when GraphiQL's browser assets are not installed from npm."""
    missing = missing_assets()
    if missing:
        unavailable(
            f"needs GraphiQL's assets ({', '.join(missing)} not installed): "
            f"{INSTALL_COMMAND}; scripts/test runs it"
        )
