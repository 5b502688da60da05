"""Local accounts, roles, API tokens and login throttling.

Roles, each including the ones below it:

``viewer``    the map, statistics and exports;
``surveyor``  also upload, commit and roll back their own batches;
``admin``     also the grid, targets, every batch, users and the audit trail.

Passwords are kept as salted scrypt hashes (:mod:`geo.store.passwords`, in the form Werkzeug writes them,
so earlier hashes stay valid); API tokens as the SHA-256 digest of a random secret shown once.
Every change to an account is written to the audit trail with the store's actor.

An account may be bound to an area -- street, community or unit codes of the current grid
(:attr:`User.area <geo.store.interface.accounts.User.area>`) -- and then sees and writes only there unless an
admin lets it see the district (:attr:`~geo.store.interface.accounts.User.sees_district`); admins are never
bound.  The codes are checked and resolved to units in :mod:`geo.figures.areas`.
Nothing here logs or returns a password.

Failed logins are counted per name -- whether or not an account has it, so that an unknown
name and a known one answer alike -- and per client address.  After :data:`MAX_FAILURES`
failures in a row a name is locked for :data:`LOCK_MINUTES`, doubling with each further
failure up to :data:`MAX_LOCK_MINUTES`; while it is locked, only a client with no failed
login in the last :data:`CLIENT_WINDOW` may try it, so someone guessing cannot keep the
account's owner out by failing on purpose from elsewhere.  A client's own failures never
turn away a right password for a name that is not locked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from geo.errors import Conflict, GridwatchError, InputError, NotFound
from geo.store.base import Store
from geo.store.interface.accounts import ApiToken, User, area_text
from geo.store.passwords import hash_password, verify_password

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
#: How long a client's failed login keeps it from trying a locked name.
CLIENT_WINDOW = timedelta(minutes=10)
TOKEN_PREFIX = "gw_"
MAX_LABEL = 100
_NAME = re.compile(r"[\w.@-]{1,64}")
#: Characters that change the direction text is shown in: a name or label holding one can be
#: made to look like another (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# checked against when the name is unknown, so an unknown name costs the same time as a wrong password
_DUMMY_HASH = hash_password("gridwatch-no-such-user")


class LoginFailed(GridwatchError):
    """Raised when a login fails -- unknown name, wrong password or disabled account, one message
    for all.  HTTP 401."""

    status = 401
    code = "bad_login"


class AccountLocked(GridwatchError):
    """Raised when a locked name is tried by a client that may not try it now.  HTTP 429;
    ``details["retry_after"]`` is the wait in seconds."""

    status = 429
    code = "account_locked"


def role_at_least(role: str | None, needed: str) -> bool:
    """Whether ``role`` includes ``needed`` (admin ⊇ surveyor ⊇ viewer)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`; :class:`InputError` (code ``bad_role``) otherwise."""
    if role not in ROLES:
        raise InputError(
            f"未知角色: {role}（可选 {', '.join(ROLES)}）",
            f"unknown role: {role} (one of {', '.join(ROLES)})",
            code="bad_role",
        )
    return role


def check_password(password: str) -> str:
    """``password`` if it has at least :data:`MIN_PASSWORD` characters; :class:`InputError`
    (code ``weak_password``) otherwise."""
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"密码至少 {MIN_PASSWORD} 个字符",
            f"a password needs at least {MIN_PASSWORD} characters",
            code="weak_password",
        )
    return password


def _refuse_hidden(text: str, what: tuple[str, str], code: str) -> None:
    """Refuse (never strip) what would make two values look alike: white space at either end,
    control characters (NUL and line breaks among them), direction controls."""
    zh, en = what
    if text != text.strip():
        raise InputError(
            f"{zh}不能以空白开头或结尾", f"a {en} cannot start or end with white space", code=code
        )
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InputError(f"{zh}不能含控制字符（如换行）", f"a {en} cannot hold control characters", code=code)
    if any(c in BIDI_CONTROLS for c in text):
        raise InputError(
            f"{zh}不能含文字方向控制字符", f"a {en} cannot hold text-direction controls", code=code
        )


def normal_name(name: str) -> str:
    """A user name as it is kept and looked up: Unicode NFC (a name typed with combining
    accents finds the account made with precomposed ones)."""
    return unicodedata.normalize("NFC", name or "")


def check_name(name: str) -> str:
    """A new user name, in NFC: 1–64 letters, digits, CJK characters or ``. @ - _``;
    :class:`InputError` (code ``bad_user_name``) for anything else, nothing stripped."""
    _refuse_hidden(name or "", ("用户名", "user name"), "bad_user_name")
    name = normal_name(name)
    if not _NAME.fullmatch(name):
        raise InputError(
            "用户名须为 1–64 个字母、数字、汉字或 . @ - _",
            "a user name is 1-64 letters, digits, . @ - or _",
            code="bad_user_name",
        )
    return name


def check_label(label: str) -> str:
    """A token's label, in NFC: up to :data:`MAX_LABEL` characters, no control or direction
    characters, no white space at the ends (:class:`InputError`, code ``bad_token_label``)."""
    label = label or ""
    _refuse_hidden(label, ("令牌用途", "token label"), "bad_token_label")
    label = unicodedata.normalize("NFC", label)
    if len(label) > MAX_LABEL:
        raise InputError(
            f"令牌用途最多 {MAX_LABEL} 个字符",
            f"a token label has at most {MAX_LABEL} characters",
            code="bad_token_label",
        )
    return label


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def get_user(store: Store, name: str) -> User:
    """The account ``name`` (looked up in NFC); :class:`NotFound` (code ``user_not_found``) when
    there is none."""
    user = store.get_user(normal_name(name))
    if user is None:
        raise NotFound(f"用户不存在: {name}", f"no such user: {name}", code="user_not_found")
    return user


def add_user(store: Store, name: str, role: str, password: str, area: Sequence[str] = ()) -> User:
    """Create an account, bound to ``area`` when given (codes checked by the caller against the
    grid, see :func:`geo.figures.areas.add_bound_user`); :class:`Conflict` when the name is
    taken, :class:`InputError` for a name :func:`check_name` refuses or an admin with an area."""
    name = check_name(name)
    check_role(role)
    check_password(password)
    area = tuple(sorted(set(area)))
    check_bindable(name, role, area)
    with store.admin_transaction():
        if store.get_user(name) is not None:
            raise Conflict(f"用户已存在: {name}", f"user already exists: {name}", code="user_exists")
        user = User(name, role, hash_password(password), True, _iso(_now()), area=area)
        store.save_user(user)
        store.record_audit("user_add", detail=f"{name} ({role})")
        if area:
            store.record_audit("user_area", detail=f"{name}: {area_text(area)}")
    return user


def check_bindable(name: str, role: str, area: Sequence[str]) -> None:
    """Refuse (:class:`InputError`, code ``admin_bound``) an area for an admin: admins are never bound."""
    if area and role == "admin":
        raise _admin_bound(name)


def _admin_bound(name: str) -> InputError:
    return InputError(
        f"管理员不能限定区域: {name}（先清除区域或改为其他角色）",
        f"an admin cannot be bound to an area: {name} (clear the area or give another role first)",
        code="admin_bound",
    )


def set_area(
    store: Store, name: str, area: Sequence[str] | None = None, sees_district: bool | None = None
) -> User:
    """Bind account ``name`` to ``area`` (street, community or unit codes, checked by the caller
    against the current grid; empty: the whole district; None: unchanged) and/or set whether it
    sees the district (None: unchanged).  Refuses an admin with an area (:class:`InputError`,
    code ``admin_bound``).  A change ends the account's sessions and is audited
    (``user_area``, ``user_sees_district``); setting what is already set changes nothing."""
    with store.admin_transaction():
        user = get_user(store, name)
        new_area = user.area if area is None else tuple(sorted(set(area)))
        new_sees = user.sees_district if sees_district is None else bool(sees_district)
        if new_area and user.role == "admin":
            raise _admin_bound(user.name)
        if new_area == user.area and new_sees == user.sees_district:
            return user
        if new_area != user.area:
            store.record_audit("user_area", detail=f"{user.name}: {area_text(new_area) or '-'}")
        if new_sees != user.sees_district:
            store.record_audit("user_sees_district", detail=f"{user.name}: {'yes' if new_sees else 'no'}")
        user.area, user.sees_district = new_area, new_sees
        user.session_version += 1
        store.save_user(user)
    return user


def set_password(store: Store, name: str, password: str) -> User:
    """New password; unlocks the account and ends its sessions."""
    check_password(password)
    with store.admin_transaction():
        user = get_user(store, name)
        user.password = hash_password(password)
        user.session_version += 1
        store.save_user(user)
        store.clear_login_failures("user", user.name)
        store.record_audit("user_password", detail=user.name)
    return user


def set_active(store: Store, name: str, active: bool) -> User:
    """Disable (ending its sessions and API tokens' use) or enable an account."""
    with store.admin_transaction():
        user = get_user(store, name)
        user.active = active
        user.session_version += 1
        store.save_user(user)
        if active:
            store.clear_login_failures("user", user.name)
        store.record_audit("user_enable" if active else "user_disable", detail=user.name)
    return user


def set_role(store: Store, name: str, role: str) -> User:
    """Give account ``name`` the role ``role`` (:func:`check_role`), ending its sessions; audited."""
    check_role(role)
    with store.admin_transaction():
        user = get_user(store, name)
        if role == "admin" and user.area:
            raise _admin_bound(user.name)
        user.role = role
        user.session_version += 1
        store.save_user(user)
        store.record_audit("user_role", detail=f"{user.name} ({role})")
    return user


def end_sessions(store: Store, name: str) -> None:
    """End every session of ``name`` (signing out): its session version moves on, so session
    cookies made before, copies included, are refused."""
    with store.admin_transaction():
        user = store.get_user(normal_name(name))
        if user is not None:
            user.session_version += 1
            store.save_user(user)


def authenticate(store: Store, name: str, password: str, client: str | None = None) -> User:
    """The active account ``name`` if ``password`` is its password.

    Raises :class:`LoginFailed` (one message whether the name or the password is wrong) or
    :class:`AccountLocked` when ``name`` is locked (see the module's description) and
    ``client`` -- the address asking, None when unknown -- may not try it now.  Known and
    unknown names go the same way: the same checks, one password hash each, the same
    records and the same answers.
    """
    name = normal_name(name)
    now = _now()
    record = store.login_failures("user", name)
    locked = _until(record.locked_until) > now
    if locked and not _client_may_try(store, client, now):
        verify_password(_DUMMY_HASH, password or "")  # the same cost as a real check
        raise _locked(_until(record.locked_until) - now)
    user = store.get_user(name)
    ok = verify_password(user.password if user is not None else _DUMMY_HASH, password or "")
    if user is not None and ok and user.active:
        if record.failures:
            store.clear_login_failures("user", name)
        return user
    with store.admin_transaction():
        record = store.login_failures("user", name)  # again: another worker may have counted one
        record.failures += 1
        record.last_failure = _iso(now)
        extra = record.failures - MAX_FAILURES
        if extra >= 0:
            minutes = min(MAX_LOCK_MINUTES, LOCK_MINUTES * 2 ** min(extra, 16))
            record.locked_until = _iso(now + timedelta(minutes=minutes))
        store.save_login_failures(record)
        if client is not None:
            seen = store.login_failures("client", client)
            if _until(seen.last_failure) <= now - CLIENT_WINDOW:
                seen.failures = 0
            seen.failures += 1
            seen.last_failure = _iso(now)
            store.save_login_failures(seen)
        if extra == 0 and user is not None:
            store.record_audit("user_locked", detail=user.name)
    if locked:
        raise _locked(_until(record.locked_until) - now)
    raise LoginFailed("用户名或密码错误", "wrong user name or password")


def _until(stamp: str | None) -> datetime:
    return datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=UTC)


def _client_may_try(store: Store, client: str | None, now: datetime) -> bool:
    """Whether ``client`` may try a locked name: known, with no failed login for a while."""
    if client is None:
        return False
    return _until(store.login_failures("client", client).last_failure) <= now - CLIENT_WINDOW


def _locked(wait: timedelta) -> AccountLocked:
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    return AccountLocked(
        f"登录失败次数过多，请 {minutes} 分钟后再试",
        f"too many failed logins: try again in {minutes} min",
        details={"retry_after": minutes * 60},
    )


# --- API tokens -------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(store: Store, user: str, label: str = "") -> tuple[ApiToken, str]:
    """A new token for ``user``: the record and the secret (shown once, never stored)."""
    user = get_user(store, user).name
    label = check_label(label)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
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
