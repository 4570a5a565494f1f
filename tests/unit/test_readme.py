"""The README's configuration table lists every setting a process reads, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.adapters.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.+) \|$")


def configuration_rows() -> dict[str, str]:
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in map(ROW.match, section.splitlines()) if m}


def test_every_setting_is_in_the_configuration_table_and_nothing_else() -> None:
    documented = configuration_rows()
    assert set(documented) == {name.upper() for name in Settings.model_fields}


def test_the_table_shows_each_settings_default() -> None:
    defaults = Settings.model_construct()
    for name, shown in configuration_rows().items():
        default = getattr(defaults, name.lower())
        if default == "":
            assert shown in ("", "(empty)"), name
        else:
            assert shown.strip("`") == str(default), name
