"""Password hashes: salted scrypt from the standard library.

Hashes are written as ``scrypt:N:r:p$salt$hex`` -- the form Werkzeug's
``generate_password_hash`` writes, so the hashes of stores made with it stay verifiable and
the engine needs no web framework.  ``pbkdf2:<hash>:<iterations>$salt$hex`` hashes (Werkzeug's
other method) verify too.  Parameters read from a stored hash are bounded, so a damaged store
cannot make one check take minutes or gigabytes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

__all__ = ["hash_password", "verify_password"]

#: scrypt work factors of new hashes (Werkzeug's defaults: N=2**15, r=8, p=1, 16-character salt).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SALT_LENGTH = 16
_SALT_CHARS = string.ascii_letters + string.digits

# bounds of what a stored hash may ask for
_MAX_SCRYPT_N, _MAX_SCRYPT_R, _MAX_SCRYPT_P = 2**20, 32, 16
_MAX_PBKDF2_ITERATIONS = 10_000_000
_PBKDF2_HASHES = frozenset({"sha256", "sha512", "sha1"})
#: Werkzeug's pbkdf2 iterations when a hash names none.
_PBKDF2_DEFAULT_ITERATIONS = 1_000_000


def _scrypt(password: str, salt: str, n: int, r: int, p: int) -> str:
    return hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p).hex()


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password`` (``scrypt:N:r:p$salt$hex``)."""
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(SALT_LENGTH))
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}${salt}${digest}"


def _digest(method: str, salt: str, password: str) -> str | None:
    """The hex digest ``method`` gives, or None for a method or parameters out of bounds."""
    name, *args = method.split(":")
    try:
        if name == "scrypt":
            n, r, p = (int(a) for a in args) if args else (2**15, 8, 1)
            if not (
                1 < n <= _MAX_SCRYPT_N
                and n & (n - 1) == 0
                and 0 < r <= _MAX_SCRYPT_R
                and 0 < p <= _MAX_SCRYPT_P
            ):
                return None
            return _scrypt(password, salt, n, r, p)
        if name == "pbkdf2" and len(args) <= 2:
            algorithm = args[0] if args else "sha256"
            iterations = int(args[1]) if len(args) == 2 else _PBKDF2_DEFAULT_ITERATIONS
            if algorithm not in _PBKDF2_HASHES or not 0 < iterations <= _MAX_PBKDF2_ITERATIONS:
                return None
            return hashlib.pbkdf2_hmac(algorithm, password.encode(), salt.encode(), iterations).hex()
    except ValueError:
        return None
    return None


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (compared in constant time)."""
    try:
        method, salt, digest = stored.split("$", 2)
    except ValueError:
        return False
    got = _digest(method, salt, password)
    return got is not None and hmac.compare_digest(got, digest)
