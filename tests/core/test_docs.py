"""The README's configuration table and the Settings model describe the same variables."""

from __future__ import annotations

import re
from pathlib import Path

from lexintel_core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    documented = set(re.findall(r"^\| `LEXINTEL_([A-Z0-9_]+)` \|", README.read_text(), re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields, {
        "undocumented": sorted(fields - documented),
        "not settings": sorted(documented - fields),
    }
