"""The audit trail: every write (import, commit, rollback, grid replacement, target change,
account change) with who, when, from where, what, batch and counts.  Entries are written by
the store inside the transaction of the write itself, so a write and its entry commit or
vanish together; this module only reads and exports them."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from geo.output.tables import spreadsheet_cell
from geo.reading.display import safe_display_name
from geo.store.interface.audit import AuditEntry

#: Actions and their labels (Chinese, English).
ACTIONS: dict[str, tuple[str, str]] = {
    "import": ("导入", "import"),
    "grid_replace": ("替换网格", "grid replacement"),
    "targets": ("修改目标", "targets changed"),
    "rollback": ("回滚", "rollback"),
    "user_add": ("新建用户", "user added"),
    "user_password": ("修改密码", "password changed"),
    "user_disable": ("停用用户", "user disabled"),
    "user_enable": ("启用用户", "user enabled"),
    "user_role": ("修改角色", "role changed"),
    "user_locked": ("登录失败锁定", "locked after failed logins"),
    "token_add": ("新建令牌", "API token created"),
    "token_revoke": ("撤销令牌", "API token revoked"),
}

COLUMNS = (
    ("at", "时间", "When (UTC)"),
    ("user", "用户", "User"),
    ("client", "来源地址", "Client"),
    ("action", "操作", "Action"),
    ("layer", "图层", "Layer"),
    ("batch_id", "批次", "Batch"),
    ("counts", "数量", "Counts"),
    ("detail", "说明", "Detail"),
)


def action_label(action: str, lang: str = "zh") -> str:
    """The label of audit action ``action`` in ``lang`` (``"zh"`` or ``"en"``); an unknown action as it is."""
    zh, en = ACTIONS.get(action, (action, action))
    return en if lang == "en" else zh


def write_csv(entries: list[AuditEntry], out: TextIO, lang: str = "zh") -> None:
    """Entries as CSV (UTF-8 with BOM, which Excel and WPS open as Unicode), headers in ``lang``.

    Control and bidi characters in names are shown as U+FFFD (:func:`geo.reading.values.safe_display_name`),
    and cells that a spreadsheet would read as a formula (``= + - @``, tab, line end) are prefixed
    with ``'`` (:func:`geo.output.tables.spreadsheet_cell`).
    """
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow([en if lang == "en" else zh for _, zh, en in COLUMNS])
    for e in entries:
        w.writerow(
            [
                _cell(v)
                for v in (
                    e.at,
                    e.user or "",
                    e.client or "",
                    action_label(e.action, lang),
                    e.layer or "",
                    e.batch_id if e.batch_id is not None else "",
                    json.dumps(e.counts, ensure_ascii=False) if e.counts else "",
                    e.detail or "",
                )
            ]
        )


def _cell(value: object) -> str:
    return str(spreadsheet_cell(safe_display_name(str(value))))
