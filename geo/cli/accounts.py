"""Commands for accounts, API tokens and the audit trail: ``user``, ``token``, ``audit``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from geo.cli.common import cli_store, print_json, print_row, say
from geo.errors import InputError


def _read_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice without echo."""
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("密码 / password: ")
    if getpass.getpass("再次输入 / again: ") != first:
        raise InputError("两次输入的密码不一致", "the passwords do not match", code="password_mismatch")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    """``gridwatch user``: add, list, disable, enable an account, set its password, role or area."""
    from geo.figures import areas
    from geo.store import accounts

    store = cli_store(args)
    if args.action == "list":
        users = store.list_users()
        if args.json:
            print_json([_user_dict(u) for u in users])
            return 0
        for u in users:
            state = "" if u.active else " 已停用/disabled"
            if u.locked_until:
                state += f" 锁定至/locked until {u.locked_until}"
            area = ",".join(u.area) if u.area else "全区/district"
            if u.area and u.sees_district:
                area += " (可看全区/sees district)"
            print_row(u.name, u.role, area, f"{u.created_at}{state}")
        return 0
    if not args.name:
        raise InputError("请给出用户名", "give a user name", code="bad_user_name")
    if args.action == "add":
        role = args.role or "viewer"
        codes = areas.check_area(store, args.area or "")  # before the password is asked for
        accounts.check_bindable(args.name, role, codes)
        user = areas.add_bound_user(store, args.name, role, _read_password(args), codes)
        where = f", 区域/area {','.join(user.area)}" if user.area else ""
        say(f"已创建用户 / created: {user.name} ({user.role}{where})")
    elif args.action == "passwd":
        accounts.set_password(store, args.name, _read_password(args))
        say(f"已修改密码 / password changed: {args.name}")
    elif args.action in ("disable", "enable"):
        accounts.set_active(store, args.name, args.action == "enable")
        say(f"{'已启用 / enabled' if args.action == 'enable' else '已停用 / disabled'}: {args.name}")
    elif args.action == "role":
        user = accounts.set_role(store, args.name, args.role or "")
        say(f"已修改角色 / role changed: {user.name} ({user.role})")
    elif args.action == "area":
        if args.clear and args.area_set:
            raise InputError(
                "--set 与 --clear 只能用一个", "give either --set or --clear", code="bad_parameter"
            )
        if args.area_set is None and not args.clear and args.sees_district is None:
            raise InputError(
                "请给出 --set 编码、--clear 或 --sees-district yes|no",
                "give --set CODES, --clear or --sees-district yes|no",
                code="bad_parameter",
            )
        wanted: str | None = "" if args.clear else args.area_set
        if wanted is not None and not args.clear and not areas.parse_codes(wanted):
            raise InputError("--set 需要至少一个编码", "--set needs at least one code", code="bad_parameter")
        sees = None if args.sees_district is None else args.sees_district == "yes"
        user = areas.bind_area(store, args.name, wanted, sees)
        area = ",".join(user.area) if user.area else "全区/district"
        flag = "是/yes" if user.sees_district else "否/no"
        say(f"已修改区域 / area set: {user.name}: {area}; 可看全区/sees district: {flag}")
    return 0


def _user_dict(u: Any) -> dict[str, Any]:
    return {k: v for k, v in u.__dict__.items() if k != "password"}


def cmd_token(args: argparse.Namespace) -> int:
    """``gridwatch token``: create, list or revoke an account's API tokens."""
    from geo.store import accounts

    store = cli_store(args)
    if args.action == "add":
        token, secret = accounts.create_token(store, args.name, args.label or "")
        say(f"令牌 #{token.id}（只显示这一次 / shown once）:\n{secret}")
    elif args.action == "list":
        for t in store.list_tokens(args.name):
            state = f"revoked {t.revoked_at}" if t.revoked_at else f"last used {t.last_used or '-'}"
            print_row(f"#{t.id}", t.user, t.label, t.created_at, state)
    else:
        if args.id is None:
            raise InputError("请给出令牌编号 --id", "give the token number with --id", code="bad_token")
        accounts.revoke_token(store, args.id)
        say(f"已撤销令牌 / revoked: #{args.id}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``gridwatch audit``: the audit trail, newest first (``--csv`` for a table)."""
    from geo.output.audit import write_csv

    store = cli_store(args)
    entries = store.audit_entries(limit=args.limit, user=args.by, action=args.action)
    if args.csv:
        write_csv(entries, sys.stdout)
        return 0
    for e in entries:
        print_row(
            e.at,
            e.user or "-",
            e.client or "-",
            e.action,
            e.layer or "",
            e.batch_id or "",
            json.dumps(e.counts, ensure_ascii=False),
            e.detail or "",
        )
    return 0
