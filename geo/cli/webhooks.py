"""``gridwatch webhook``: add, list, remove and test the webhooks that notifications go to."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from geo.cli.common import cli_store, print_json, print_row, row_id, say


def cmd_webhook(args: argparse.Namespace) -> int:
    """``webhook add|list|remove|test``; ``test`` sends the test message at once and says how it went."""
    from geo.notify import outbox

    store = cli_store(args)
    policy = outbox.Policy.from_env()
    if args.action == "add":
        secret = args.secret
        if args.secret_stdin:
            secret = sys.stdin.readline().strip() or None
        hook = outbox.add_webhook(
            store,
            args.url,
            args.format,
            area=args.area,
            account=args.account,
            secret=secret,
            by=store.actor.user,
            policy=policy,
        )
        shown = outbox.webhook_dict(hook)
        if args.json:
            print_json(shown)
        else:
            say(f"已添加 Webhook / added webhook {hook.id}: {shown['url']}")
        return 0
    if args.action == "list":
        hooks = [outbox.webhook_dict(h) for h in store.webhooks()]
        if args.json:
            print_json(hooks)
            return 0
        for h in hooks:
            whom = f"area {h['area']}" if h["area"] else f"account {h['account']}"
            print_row(h["id"], whom, h["format"] + (" signed" if h["signed"] else ""), h["url"])
        return 0
    if args.action == "remove":
        outbox.remove_webhook(store, args.id)
        say(f"已删除 Webhook / removed webhook {args.id}")
        return 0
    # test: queue the message and send what is due now, as the server's sender would
    row = outbox.queue_test(store, args.id, store.actor.user)
    outbox.send_due(store, policy)
    last = next((d for d in store.deliveries(args.id) if d.outbox_id == row), None)
    result: dict[str, Any] = outbox.delivery_dict(last) if last else {"outbox_id": row, "outcome": "pending"}
    if args.json:
        print_json(result)
    else:
        say(f"{result['outcome']} {result.get('http_status') or ''} {result.get('error') or ''}".strip())
    return 0 if result["outcome"] == "sent" else 1


def add_webhook_parser(sub: Any) -> None:
    """The ``webhook`` command and its actions."""
    w = sub.add_parser("webhook", help="通知 Webhook / notification webhooks: add | list | remove | test")
    actions = w.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="添加 / add a webhook for an area or an account")
    whom = add.add_mutually_exclusive_group(required=True)
    whom.add_argument(
        "--area", metavar="CODE", help="街道、社区或单元网格代码 / a street, community or unit code"
    )
    whom.add_argument("--account", metavar="NAME", help="账户 / an account")
    add.add_argument("--format", required=True, choices=("json", "wecom", "dingtalk"))
    add.add_argument("--secret", help="钉钉加签密钥 / the dingtalk signing secret")
    add.add_argument(
        "--secret-stdin", action="store_true", help="从标准输入读取密钥 / read the secret from stdin"
    )
    add.add_argument("url", metavar="URL")
    add.add_argument("--json", action="store_true")
    actions.add_parser("list", help="列出 / list").add_argument("--json", action="store_true")
    rm = actions.add_parser("remove", help="删除 / remove")
    rm.add_argument("id", type=row_id)
    test = actions.add_parser("test", help="发送测试消息 / send a test message now")
    test.add_argument("id", type=row_id)
    test.add_argument("--json", action="store_true")
    for p in (add, rm, test):
        p.add_argument("--user")
    w.set_defaults(func=cmd_webhook)
