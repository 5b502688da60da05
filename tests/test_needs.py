"""The ``needs`` marker (tests/helpers/needs.py): a test whose Debian package, node_modules or
compiled translations are missing is skipped with the reason on a contributor's machine and
fails under CI, which must run everything."""

from __future__ import annotations

import pytest

from tests.helpers import needs


def test_present_pieces_let_the_test_run() -> None:
    assert needs.decide(True, "x is missing", ci=False) is None
    assert needs.decide(True, "x is missing", ci=True) is None


def test_a_missing_piece_skips_with_its_reason_outside_ci() -> None:
    assert needs.decide(False, "x is missing (apt-get install x)", ci=False) == (
        "skip",
        "x is missing (apt-get install x)",
    )


def test_a_missing_piece_fails_under_ci() -> None:
    action, reason = needs.decide(False, "x is missing (apt-get install x)", ci=True)
    assert action == "fail"
    assert reason.startswith("x is missing (apt-get install x)") and "CI" in reason


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(needs.NEEDS, "chromium", (lambda: None, "Debian's chromium is not installed"))


def test_check_skips_on_a_contributors_machine(nothing_installed, monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        needs.check("chromium")


def test_check_fails_when_ci_is_set(nothing_installed, monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"chromium is not installed.*CI runs every test"):
        needs.check("chromium")


def test_every_need_says_how_to_get_it_and_unknown_ones_are_refused() -> None:
    for name, (_present, reason) in needs.NEEDS.items():
        assert "(" in reason and reason.endswith(")"), name
    with pytest.raises(ValueError, match="unknown need"):
        needs.check("chromiun")
