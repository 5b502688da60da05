"""Commands on what was imported: ``batches``, ``rollback`` and the grid's versions, ``grids``."""

from __future__ import annotations

import argparse

from geo.cli.common import cli_store, print_json, print_row, say


def cmd_batches(args: argparse.Namespace) -> int:
    """``gridwatch batches``: the import batches of a layer, or of all."""
    store = cli_store(args)
    rows = [b.to_dict() for b in store.batches(args.layer)]
    if args.json:
        print_json(rows)
        return 0
    print_row("批次", "图层", "文件", "时间", "用户", "状态", "读取", "新增", "更新", "未变", "拒绝")
    for b in rows:
        print_row(
            b["id"],
            b["layer"],
            b["source_name"],
            b["created_at"],
            b["user"] or "",
            "有效" if b["status"] == "active" else "已回滚",
            b["rows_read"],
            b["added"],
            b["updated"],
            b["unchanged"],
            b["rejected"],
        )
    return 0


def cmd_grids(args: argparse.Namespace) -> int:
    """``gridwatch grids``: the grid's versions and which is current."""
    from geo.store import clock

    store = cli_store(args)
    current = store.current_grid_version()
    rows = []
    for v in store.grid_versions():
        status = "rolled_back" if v.rolled_back_tx is not None else "active"
        rows.append(
            {
                "id": v.id,
                "valid_from": v.valid_from,
                "imported_at": v.created_at,
                "user": v.user,
                "units": v.units,
                "status": status,
                "current": current is not None and v.id == current.id,
                "parent": v.parent,
                "tx": v.tx,
                "rolled_back_tx": v.rolled_back_tx,
            }
        )
    if args.json:
        print_json(rows)
        return 0
    print_row("版本", "生效日期", "导入时间", "用户", "单元数", "状态")
    for r in rows:
        state = "当前" if r["current"] else ("有效" if r["status"] == "active" else "已回滚")
        print_row(
            r["id"],
            r["valid_from"],
            clock.shown(r["imported_at"]) or "",
            r["user"] or "",
            r["units"],
            state,
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``gridwatch rollback``: roll a batch back whole; the features it replaced come back."""
    from geo.imports.batches import rollback

    store = cli_store(args)
    batch = rollback(store, args.batch, drop_edits=bool(getattr(args, "drop_edits", False)))
    say(f"已回滚批次 {batch.id}（{batch.layer}，{batch.source_name}） / rolled back batch {batch.id}")
    return 0
