"""What a test needs from the machine beyond the Python packages: Debian packages (chromium,
LibreOffice, PostgreSQL with PostGIS), ``npm ci`` (node_modules) and compiled translations.  Mark a test with
``@pytest.mark.needs("chromium")``: where the piece is missing it is skipped with the reason
and the command that installs it, except under CI (``CI`` set), where it fails instead, so that
CI runs everything."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def chromium() -> str | None:
    """Debian's chromium, which Playwright drives (no browser is downloaded)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def libreoffice() -> str | None:
    """LibreOffice, which opens exported spreadsheets headless."""
    return shutil.which("libreoffice") or shutil.which("soffice")


def postgis() -> bool:
    """PostgreSQL's server programs and the PostGIS extension (Debian's packages), which
    ``scripts/postgres.sh`` starts a throw-away cluster with."""
    return bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))) and bool(
        list(Path("/usr/share/postgresql").glob("*/extension/postgis.control"))
    )


def _node_modules() -> bool:
    """Every package of package.json installed (a node_modules from before a package was added
    is missing it: npm ci again)."""
    import json

    wanted = json.loads((ROOT / "package.json").read_text(encoding="utf-8")).get("dependencies", {})
    return all((ROOT / "node_modules" / name / "package.json").is_file() for name in wanted)


def _translations() -> bool:
    """Every catalogue compiled, and not before its last change."""
    for po in (ROOT / "translations").glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.is_file() or mo.stat().st_mtime < po.stat().st_mtime:
            return False
    return True


#: name → (is it here?, why a test is skipped without it)
NEEDS: dict[str, tuple[Callable[[], object], str]] = {
    "chromium": (chromium, "Debian's chromium is not installed (bash scripts/system-packages.sh)"),
    "libreoffice": (libreoffice, "LibreOffice is not installed (bash scripts/system-packages.sh)"),
    "postgis": (
        postgis,
        "PostgreSQL with PostGIS is not installed (bash scripts/system-packages.sh)",
    ),
    "node_modules": (_node_modules, "node_modules is missing (npm ci)"),
    "translations": (
        _translations,
        "compiled translations are missing or older than messages.po (.venv/bin/pybabel compile -d translations)",
    ),
}


def decide(present: bool, reason: str, ci: bool) -> tuple[str, str] | None:
    """What to do about a test whose need is ``present`` or not: None (run it), or
    ``("skip", reason)``, or under CI ``("fail", reason)``."""
    if present:
        return None
    if ci:
        return "fail", f"{reason}; CI runs every test, so this one fails instead of being skipped"
    return "skip", reason


def check(*names: str) -> None:
    """Skip the running test (fail it under CI) unless every piece ``names`` is here."""
    for name in names:
        if name not in NEEDS:
            raise ValueError(f"unknown need {name!r}; known: {', '.join(NEEDS)}")
        present, reason = NEEDS[name]
        verdict = decide(bool(present()), reason, bool(os.environ.get("CI")))
        if verdict is not None:
            action, why = verdict
            if action == "fail":
                pytest.fail(why, pytrace=False)
            pytest.skip(why)
