"""Password hashes from the standard library, in the form stores made with Werkzeug hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.security import check_password_hash, generate_password_hash

from geo.store.passwords import hash_password, verify_password


def test_new_hashes_are_scrypt_salted_and_verify():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt:32768:8:1$") and first != second  # salted
    assert verify_password(first, "correct horse") and not verify_password(first, "correct hors")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["scrypt", "scrypt:16384:8:1", "pbkdf2:sha256", "pbkdf2:sha256:1000"])
def test_hashes_written_by_werkzeug_stay_valid(method):
    stored = generate_password_hash("密码-long-1", method=method)
    assert verify_password(stored, "密码-long-1")
    assert not verify_password(stored, "密码-long-2")


def test_werkzeug_reads_ours():
    assert check_password_hash(hash_password("pw-long-enough-1"), "pw-long-enough-1")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "no-dollars",
        "md5$salt$abc",
        "scrypt:1073741824:8:1$salt$00",  # a work factor that would take gigabytes
        "scrypt:1000:8:1$salt$00",  # N not a power of two
        "scrypt:x:y:z$salt$00",
        "pbkdf2:sha256:999999999$salt$00",
        "pbkdf2:md4:1000$salt$00",
        "plain$$password",
    ],
)
def test_damaged_or_hostile_stored_hashes_never_match_and_never_raise(stored):
    assert verify_password(stored, "password") is False


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(st.text(max_size=40))
def test_property_any_password_round_trips(password):
    stored = hash_password(password)
    assert verify_password(stored, password)
    assert not verify_password(stored, password + "x")
