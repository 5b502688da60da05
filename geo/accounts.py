"""Local accounts, roles, API tokens and login throttling.

Roles, each including the ones below it:

``viewer``    the map, statistics and exports;
``surveyor``  also upload, commit and roll back their own batches;
``admin``     also the grid, targets, every batch, users and the audit trail.

Passwords are kept as salted scrypt hashes (:mod:`werkzeug.security`, the hashing Flask
applications use); API tokens as the SHA-256 digest of a random secret shown once.
Every change to an account is written to the audit trail with the store's actor.
Nothing here logs or returns a password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from geo.errors import Conflict, GridwatchError, InputError, NotFound
from geo.store import ApiToken, Store, User

ROLES = ("viewer", "surveyor", "admin")
ROLE_LABELS = {
    "viewer": ("查看", "viewer"),
    "surveyor": ("采集上报", "surveyor"),
    "admin": ("管理员", "admin"),
}
MIN_PASSWORD = 8
#: Failed logins in a row before an account is locked; each further failure doubles the lock.
MAX_FAILURES = 5
LOCK_MINUTES = 1
MAX_LOCK_MINUTES = 60
TOKEN_PREFIX = "gw_"
_NAME = re.compile(r"^[\w.@-]{1,64}$")
# checked against when the name is unknown, so an unknown name costs the same time as a wrong password
_DUMMY_HASH = generate_password_hash("gridwatch-no-such-user")


class LoginFailed(GridwatchError):
    status = 401
    code = "bad_login"


class AccountLocked(GridwatchError):
    status = 429
    code = "account_locked"


def role_at_least(role: str | None, needed: str) -> bool:
    """Whether ``role`` includes ``needed`` (admin ⊇ surveyor ⊇ viewer)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(
            f"未知角色: {role}（可选 {', '.join(ROLES)}）",
            f"unknown role: {role} (one of {', '.join(ROLES)})",
            code="bad_role",
        )
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"密码至少 {MIN_PASSWORD} 个字符",
            f"a password needs at least {MIN_PASSWORD} characters",
            code="weak_password",
        )
    return password


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def get_user(store: Store, name: str) -> User:
    user = store.get_user(name)
    if user is None:
        raise NotFound(f"用户不存在: {name}", f"no such user: {name}", code="user_not_found")
    return user


def add_user(store: Store, name: str, role: str, password: str) -> User:
    """Create an account; :class:`Conflict` when the name is taken."""
    if not _NAME.match(name or ""):
        raise InputError(
            "用户名须为 1–64 个字母、数字、汉字或 . @ - _",
            "a user name is 1-64 letters, digits, . @ - or _",
            code="bad_user_name",
        )
    check_role(role)
    check_password(password)
    with store.admin_transaction():
        if store.get_user(name) is not None:
            raise Conflict(f"用户已存在: {name}", f"user already exists: {name}", code="user_exists")
        user = User(name, role, generate_password_hash(password), True, _iso(_now()))
        store.save_user(user)
        store.record_audit("user_add", detail=f"{name} ({role})")
    return user


def set_password(store: Store, name: str, password: str) -> User:
    """New password; unlocks the account and ends its sessions."""
    check_password(password)
    with store.admin_transaction():
        user = get_user(store, name)
        user.password = generate_password_hash(password)
        user.failed_logins = 0
        user.locked_until = None
        user.session_version += 1
        store.save_user(user)
        store.record_audit("user_password", detail=name)
    return user


def set_active(store: Store, name: str, active: bool) -> User:
    """Disable (ending its sessions and API tokens' use) or enable an account."""
    with store.admin_transaction():
        user = get_user(store, name)
        user.active = active
        user.session_version += 1
        if active:
            user.failed_logins = 0
            user.locked_until = None
        store.save_user(user)
        store.record_audit("user_enable" if active else "user_disable", detail=name)
    return user


def set_role(store: Store, name: str, role: str) -> User:
    check_role(role)
    with store.admin_transaction():
        user = get_user(store, name)
        user.role = role
        user.session_version += 1
        store.save_user(user)
        store.record_audit("user_role", detail=f"{name} ({role})")
    return user


def authenticate(store: Store, name: str, password: str) -> User:
    """The active account ``name`` if ``password`` is its password.

    Raises :class:`LoginFailed` (one message whether the name or the password is wrong)
    or :class:`AccountLocked` after :data:`MAX_FAILURES` failures in a row: locked for
    :data:`LOCK_MINUTES`, doubling with each further failure up to :data:`MAX_LOCK_MINUTES`.
    """
    user = store.get_user(name or "")
    now = _now()
    if user is not None and user.locked_until and datetime.fromisoformat(user.locked_until) > now:
        check_password_hash(_DUMMY_HASH, password or "")  # same cost as a real check
        wait = max(1, int((datetime.fromisoformat(user.locked_until) - now).total_seconds()))
        raise AccountLocked(
            f"登录失败次数过多，请 {wait} 秒后再试",
            f"too many failed logins: try again in {wait} s",
            details={"retry_after": wait},
        )
    ok = check_password_hash(user.password if user is not None else _DUMMY_HASH, password or "")
    if user is not None and ok and user.active:
        if user.failed_logins or user.locked_until:
            user.failed_logins = 0
            user.locked_until = None
            store.save_user(user)
        return user
    if user is not None:
        user.failed_logins += 1
        extra = user.failed_logins - MAX_FAILURES
        if extra >= 0:
            minutes = min(MAX_LOCK_MINUTES, LOCK_MINUTES * 2**extra)
            user.locked_until = _iso(now + timedelta(minutes=minutes))
        with store.admin_transaction():
            store.save_user(user)
            if extra == 0:
                store.record_audit("user_locked", detail=user.name)
    raise LoginFailed("用户名或密码错误", "wrong user name or password")


# --- API tokens -------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(store: Store, user: str, label: str = "") -> tuple[ApiToken, str]:
    """A new token for ``user``: the record and the secret (shown once, never stored)."""
    get_user(store, user)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    label = (label or "").strip()[:100]
    with store.admin_transaction():
        token_id = store.add_token(user, label, _digest(secret))
        store.record_audit("token_add", detail=f"{user} #{token_id} {label}".strip())
    token = next(t for t in store.list_tokens(user) if t.id == token_id)
    return token, secret


def revoke_token(store: Store, token_id: int, owner: str | None = None) -> ApiToken:
    """Revoke a token (only ``owner``'s when given); :class:`NotFound` otherwise."""
    token = next((t for t in store.list_tokens(owner) if t.id == token_id), None)
    if token is None:
        raise NotFound(f"令牌不存在: {token_id}", f"no such token: {token_id}", code="token_not_found")
    with store.admin_transaction():
        store.revoke_token(token_id)
        store.record_audit("token_revoke", detail=f"{token.user} #{token_id}")
    return next(t for t in store.list_tokens(token.user) if t.id == token_id)


def token_user(store: Store, secret: str) -> User | None:
    """The active user a token secret belongs to, or None (unknown, revoked, user disabled)."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    token = store.find_token(_digest(secret))
    if token is None or token.revoked_at is not None:
        return None
    user = store.get_user(token.user)
    if user is None or not user.active:
        return None
    last = datetime.fromisoformat(token.last_used) if token.last_used else None
    if last is None or _now() - last > timedelta(minutes=1):
        store.touch_token(token.id)
    return user
