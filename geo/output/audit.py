"""The audit trail: every write (import, commit, rollback, grid replacement, target change,
account change) with who, when, from where, what, batch and counts.  Entries are written by
the store inside the transaction of the write itself, so a write and its entry commit or
vanish together; this module only reads and exports them."""

from __future__ import annotations

import csv
from typing import TextIO

import layers
from geo.imports.batches import TARGET_SPEC
from geo.output.tables import spreadsheet_cell
from geo.reading.display import safe_display_name
from geo.store import clock
from geo.store.interface.audit import AuditEntry

#: Actions and their labels (Chinese, English).
ACTIONS: dict[str, tuple[str, str]] = {
    "import": ("导入", "import"),
    "edit": ("编辑要素", "feature edited"),
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
    "mapping_add": ("记住值对应", "value mapping kept"),
    "mapping_remove": ("删除值对应", "value mapping removed"),
    "webhook_add": ("添加 Webhook", "webhook added"),
    "webhook_remove": ("删除 Webhook", "webhook removed"),
    "patrol_add": ("提交巡查", "patrol filed"),
    "photo_add": ("添加照片", "photo added"),
    "user_area": ("修改账户区域", "account area changed"),
    "user_sees_district": ("修改全区查看权限", "district view changed"),
    "task_create": ("新建交办单", "task handed over"),
    "task_fixed": ("整改完成", "fix reported"),
    "task_verified": ("核查通过（销号）", "verified"),
    "task_returned": ("退回整改", "returned for rework"),
}

#: Words an entry's detail may carry as codes (a patrol's result), shown in the page's language.
DETAIL_WORDS: dict[str, tuple[str, str]] = {
    "nothing_found": ("无异常", "nothing found"),
    "found": ("发现问题", "problems found"),
}

#: The counts an entry may carry and their labels (Chinese, English), in the order shown.
COUNTS: dict[str, tuple[str, str]] = {
    "rows_read": ("读取", "Rows read"),
    "added": ("新增", "Added"),
    "updated": ("更新", "Updated"),
    "unchanged": ("未变", "Unchanged"),
    "rejected": ("拒绝", "Rejected"),
    "id": ("编号", "Id"),
    "task": ("交办单", "Task"),
    "items": ("条目", "Items"),
    "patrol": ("巡查", "Patrol"),
    "units": ("网格数", "Units"),
    "features": ("要素数", "Features"),
    "photo": ("照片", "Photo"),
    "feature": ("要素", "Feature"),
    "bytes": ("字节", "Bytes"),
}

COLUMNS = (
    ("at", "时间", "When"),
    ("user", "用户", "User"),
    ("client", "来源地址", "Client"),
    ("action", "操作", "Action"),
    ("layer", "图层", "Layer"),
    ("batch_id", "批次", "Batch"),
    ("detail", "说明", "Detail"),
)


def action_label(action: str, lang: str = "zh") -> str:
    """The label of audit action ``action`` in ``lang`` (``"zh"`` or ``"en"``); an unknown action as it is."""
    zh, en = ACTIONS.get(action, (action, action))
    return en if lang == "en" else zh


def detail_text(detail: str | None, lang: str = "zh") -> str:
    """An entry's detail with the codes of :data:`DETAIL_WORDS` (whole words) in ``lang``."""
    if not detail:
        return ""
    words = detail.split(" ")
    for i, word in enumerate(words):
        if word in DETAIL_WORDS:
            zh, en = DETAIL_WORDS[word]
            words[i] = en if lang == "en" else zh
    return " ".join(words)


def count_label(key: str, lang: str = "zh") -> str:
    """The label of count ``key`` of an audit entry in ``lang``; an unknown key as it is."""
    zh, en = COUNTS.get(key, (key, key))
    return en if lang == "en" else zh


def layer_label(name: str | None, lang: str = "zh") -> str:
    """The label of the layer an entry names (a survey layer, the grid, the targets) in ``lang``;
    an unknown name as it is, none as empty."""
    if not name:
        return ""
    try:
        spec = TARGET_SPEC if name == TARGET_SPEC.name else layers.get(name)
    except KeyError:
        return name
    return spec.label_en if lang == "en" else spec.label_zh


def count_keys(entries: list[AuditEntry]) -> list[str]:
    """The count keys the entries carry: the known ones in :data:`COUNTS` order, then others."""
    seen = {k for e in entries for k in (e.counts or {})}
    return [k for k in COUNTS if k in seen] + sorted(seen - set(COUNTS))


def write_csv(entries: list[AuditEntry], out: TextIO, lang: str = "zh", tz: str | None = None) -> None:
    """Entries as CSV (UTF-8 with BOM, which Excel and WPS open as Unicode), headers in ``lang``.

    Times are in the configured zone (``tz``, default ``$GRIDWATCH_TIMEZONE``), named in the
    time column's header; actions and layers are labelled in ``lang``; each count the entries
    carry (added, updated, ...) is a column of its own.  Control and bidi characters in names
    are shown as U+FFFD (:func:`geo.reading.values.safe_display_name`), and cells that a
    spreadsheet would read as a formula (``= + - @``, tab, line end) are prefixed with ``'``
    (:func:`geo.output.tables.spreadsheet_cell`).
    """
    keys = count_keys(entries)
    out.write("\ufeff")
    w = csv.writer(out)
    headers = [en if lang == "en" else zh for _, zh, en in COLUMNS]
    headers[0] = f"{headers[0]} ({clock.zone(tz).key})"
    w.writerow(headers[:-1] + [count_label(k, lang) for k in keys] + headers[-1:])
    for e in entries:
        counts = e.counts or {}
        w.writerow(
            [
                _cell(v)
                for v in (
                    clock.local_text(e.at, tz),
                    e.user or "",
                    e.client or "",
                    action_label(e.action, lang),
                    layer_label(e.layer, lang),
                    e.batch_id if e.batch_id is not None else "",
                    *(counts.get(k, "") for k in keys),
                    detail_text(e.detail, lang),
                )
            ]
        )


def _cell(value: object) -> str:
    return str(spreadsheet_cell(safe_display_name(str(value))))
