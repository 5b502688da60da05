"""Accounts, API tokens, login throttling and the audit trail, in the engine and on the command line."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from geo.cli import main
from geo.errors import Conflict, InputError, NotFound
from geo.imports.batches import rollback
from geo.imports.importer import import_file
from geo.output.audit import write_csv
from geo.store import accounts
from geo.store.interface.audit import Actor
from tests.helpers.builders import COMM_A, X0, Y0, points_frame, write_shp
from tests.helpers.postgis import open_test_store

pytestmark = pytest.mark.backends


@pytest.mark.slow
def test_passwords_are_hashed_and_checked(store):
    accounts.add_user(store, "wangfang", "surveyor", "correct horse")
    user = store.get_user("wangfang")
    assert user is not None and user.role == "surveyor" and user.active
    assert "correct horse" not in user.password and user.password.startswith("scrypt:")
    assert accounts.authenticate(store, "wangfang", "correct horse").name == "wangfang"
    with pytest.raises(accounts.LoginFailed) as wrong:
        accounts.authenticate(store, "wangfang", "wrong horse")
    with pytest.raises(accounts.LoginFailed) as unknown:
        accounts.authenticate(store, "nobody", "correct horse")
    assert wrong.value.status == 401 and wrong.value.to_dict() == unknown.value.to_dict()


@pytest.mark.parametrize(
    ("name", "role", "password", "error"),
    [
        ("a b", "viewer", "longenough", "bad_user_name"),
        ("", "viewer", "longenough", "bad_user_name"),
        ("bob\n", "viewer", "longenough", "bad_user_name"),
        ("bob\r", "viewer", "longenough", "bad_user_name"),
        (" bob", "viewer", "longenough", "bad_user_name"),
        ("bob\u3000", "viewer", "longenough", "bad_user_name"),
        ("b\x00ob", "viewer", "longenough", "bad_user_name"),
        ("b\tob", "viewer", "longenough", "bad_user_name"),
        ("b\x85ob", "viewer", "longenough", "bad_user_name"),
        *[
            (f"bo{c}b", "viewer", "longenough", "bad_user_name")
            for c in [*sorted(accounts.BIDI_CONTROLS), "\u200b", "\ufeff"]
        ],
        ("x" * 65, "viewer", "longenough", "bad_user_name"),
        ("ok", "boss", "longenough", "bad_role"),
        ("ok", "viewer", "short", "weak_password"),
    ],
)
def test_bad_accounts_are_refused(store, name, role, password, error):
    with pytest.raises(InputError) as exc:
        accounts.add_user(store, name, role, password)
    assert exc.value.code == error
    assert store.list_users() == []


def test_a_name_is_taken_once(store):
    accounts.add_user(store, "li", "viewer", "password1")
    with pytest.raises(Conflict):
        accounts.add_user(store, "li", "admin", "password2")
    assert store.get_user("li").role == "viewer"
    # a name is kept in NFC: the same name typed with a combining accent is the same name
    accounts.add_user(store, "jos\u00e9", "viewer", "password1")
    with pytest.raises(Conflict):
        accounts.add_user(store, "jose\u0301", "admin", "password2")
    assert [u.name for u in store.list_users()] == ["jos\u00e9", "li"]
    assert accounts.authenticate(store, "jose\u0301", "password1").name == "jos\u00e9"


def test_the_command_line_refuses_a_name_with_a_line_break(tmp_path, monkeypatch, capsys, store_url):
    """``gridwatch user add $'bob\\n'`` once made a second "bob"."""
    data = str(tmp_path / "d")
    monkeypatch.setattr("sys.stdin", io.StringIO("bob-password\n"))
    assert main(["--data", data, "user", "add", "bob", "--password-stdin"]) == 0
    for name in ("bob\n", "bob ", "\u202ebob", "bob\u200f"):
        monkeypatch.setattr("sys.stdin", io.StringIO("bob-password\n"))
        assert main(["--data", data, "user", "add", name, "--password-stdin"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gridwatch: ") and err.count("\n") == 1, err
    with open_test_store(data) as store:
        assert [u.name for u in store.list_users()] == ["bob"]


@pytest.mark.parametrize("label", ["cron\n", " cron", "cron\t", "cr\u202eon", "\u2067cron", "c" * 101])
def test_token_labels_that_hide_characters_are_refused(tmp_path, label, capsys, store_url):
    data = str(tmp_path / "d")
    with open_test_store(data) as store:
        accounts.add_user(store, "sun", "surveyor", "password1")
        with pytest.raises(InputError) as exc:
            accounts.create_token(store, "sun", label)
        assert exc.value.code == "bad_token_label" and store.list_tokens() == []
    assert main(["--data", data, "token", "add", "sun", "--label", label]) == 2
    with open_test_store(data) as store:
        assert store.list_tokens() == []
    assert accounts.check_label("夜间导入脚本 v2") == "夜间导入脚本 v2"


@pytest.mark.slow
def test_repeated_failures_lock_the_account_with_growing_waits(store):
    accounts.add_user(store, "zhao", "viewer", "password1")
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(accounts.LoginFailed):
            accounts.authenticate(store, "zhao", "guess")
    # locked: even the right password is refused until the lock ends
    with pytest.raises(accounts.AccountLocked) as locked:
        accounts.authenticate(store, "zhao", "password1")
    assert locked.value.status == 429 and 0 < locked.value.details["retry_after"] <= 60
    first_lock = datetime.fromisoformat(store.get_user("zhao").locked_until)
    # once the lock has run out, one more failure locks for twice as long
    record = store.login_failures("user", "zhao")
    record.locked_until = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    store.save_login_failures(record)
    with pytest.raises(accounts.LoginFailed):
        accounts.authenticate(store, "zhao", "guess again")
    second_lock = datetime.fromisoformat(store.get_user("zhao").locked_until)
    assert second_lock - datetime.now(UTC) > timedelta(seconds=100)
    assert first_lock - datetime.now(UTC) < timedelta(seconds=61)
    # a new password set by an admin unlocks it
    accounts.set_password(store, "zhao", "password2")
    assert accounts.authenticate(store, "zhao", "password2").failed_logins == 0


@pytest.mark.slow
def test_unknown_names_are_locked_like_known_ones(store):
    accounts.add_user(store, "zhao", "viewer", "password1")
    answers = {}
    for name in ("zhao", "no-such-name"):
        answers[name] = []
        for _ in range(accounts.MAX_FAILURES + 2):
            with pytest.raises((accounts.LoginFailed, accounts.AccountLocked)) as exc:
                accounts.authenticate(store, name, "guess", client="10.0.0.1")
            answers[name].append((type(exc.value), exc.value.to_dict()))
    assert answers["zhao"] == answers["no-such-name"]
    assert [a[0] for a in answers["zhao"]][-3:] == [
        accounts.LoginFailed,
        accounts.AccountLocked,
        accounts.AccountLocked,
    ]
    assert store.login_failures("user", "no-such-name").locked_until is not None


@pytest.mark.slow
def test_a_locked_name_lets_in_its_password_from_a_client_without_failures(store):
    accounts.add_user(store, "admin", "admin", "right-password")
    for i in range(accounts.MAX_FAILURES + 3):
        with pytest.raises((accounts.LoginFailed, accounts.AccountLocked)):
            accounts.authenticate(store, "admin", f"guess-{i}", client="203.0.113.5")
    # the guessing client is refused even the right password while the lock lasts
    with pytest.raises(accounts.AccountLocked):
        accounts.authenticate(store, "admin", "right-password", client="203.0.113.5")
    # a client without failures gets one try: wrong, and it is refused like the other
    with pytest.raises(accounts.AccountLocked):
        accounts.authenticate(store, "admin", "guess-again", client="192.0.2.1")
    with pytest.raises(accounts.AccountLocked):
        accounts.authenticate(store, "admin", "right-password", client="192.0.2.1")
    # right, and it gets in and the lock is gone
    assert accounts.authenticate(store, "admin", "right-password", client="192.0.2.2").name == "admin"
    assert store.get_user("admin").locked_until is None
    assert accounts.authenticate(store, "admin", "right-password", client="203.0.113.5").name == "admin"


@pytest.mark.slow
def test_a_clients_failures_never_refuse_a_right_password(store):
    accounts.add_user(store, "qian", "viewer", "password1")
    for i in range(40):
        with pytest.raises((accounts.LoginFailed, accounts.AccountLocked)):
            accounts.authenticate(store, f"name-{i % 3}", "guess", client="10.9.9.9")
    # each name was checked until it locked; the refused tries after that were not checked
    assert store.login_failures("client", "10.9.9.9").failures == 3 * accounts.MAX_FAILURES
    assert accounts.authenticate(store, "qian", "password1", client="10.9.9.9").name == "qian"


@pytest.mark.slow
@pytest.mark.gpkg_only
def test_failed_login_records_stay_bounded(store, monkeypatch):
    monkeypatch.setattr("geo.store.interface.accounts.LOGINS_KEPT", 10)
    for i in range(25):
        with pytest.raises(accounts.LoginFailed):
            accounts.authenticate(store, f"random-{i}", "guess", client=f"10.0.0.{i}")
    kept = store.conn.execute("SELECT count(*) FROM gw_logins").fetchone()[0]
    assert kept == 10
    # the newest are the ones kept
    assert store.login_failures("user", "random-24").failures == 1
    assert store.login_failures("user", "random-0").failures == 0
    # a name that is locked is kept while names tried at random come and go
    for _ in range(accounts.MAX_FAILURES + 1):
        with pytest.raises((accounts.LoginFailed, accounts.AccountLocked)):
            accounts.authenticate(store, "admin", "guess", client="10.1.1.1")
    for i in range(25, 60):
        with pytest.raises(accounts.LoginFailed):
            accounts.authenticate(store, f"random-{i}", "guess", client="10.1.1.2")
    assert store.login_failures("user", "admin").locked_until is not None


def test_signing_out_ends_the_sessions(store):
    accounts.add_user(store, "wu", "viewer", "password1")
    before = store.get_user("wu").session_version
    accounts.end_sessions(store, "wu")
    assert store.get_user("wu").session_version == before + 1


def test_disabled_accounts_cannot_log_in_and_sessions_end(store):
    accounts.add_user(store, "qian", "viewer", "password1")
    before = store.get_user("qian").session_version
    accounts.set_active(store, "qian", False)
    with pytest.raises(accounts.LoginFailed):
        accounts.authenticate(store, "qian", "password1")
    assert store.get_user("qian").session_version > before
    accounts.set_active(store, "qian", True)
    assert accounts.authenticate(store, "qian", "password1").name == "qian"


def test_tokens_are_kept_as_digests_and_can_be_revoked(store):
    accounts.add_user(store, "sun", "surveyor", "password1")
    token, secret = accounts.create_token(store, "sun", "nightly import")
    assert secret.startswith("gw_") and len(secret) > 40
    assert secret not in json.dumps([t.__dict__ for t in store.list_tokens()])
    assert accounts.token_user(store, secret).name == "sun"
    assert store.list_tokens("sun")[0].last_used is not None
    assert accounts.token_user(store, secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert accounts.token_user(store, "not-a-token") is None
    accounts.set_active(store, "sun", False)
    assert accounts.token_user(store, secret) is None  # a disabled user's tokens do nothing
    accounts.set_active(store, "sun", True)
    with pytest.raises(NotFound):
        accounts.revoke_token(store, token.id, owner="someone-else")
    assert accounts.revoke_token(store, token.id, owner="sun").revoked_at is not None
    assert accounts.token_user(store, secret) is None


def test_account_writes_do_not_invalidate_survey_caches(store):
    revision = store.revision()
    accounts.add_user(store, "zhou", "viewer", "password1")
    _token, secret = accounts.create_token(store, "zhou")
    accounts.token_user(store, secret)
    with pytest.raises(accounts.LoginFailed):
        accounts.authenticate(store, "zhou", "nope-nope")
    assert store.revision() == revision


@pytest.mark.slow
def test_every_write_is_audited_with_who_and_where(gridded_store, tmp_path):
    store = gridded_store
    store.actor = Actor("wu", "10.0.0.7")
    sites = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 50)], 案件编号=["A1", "A2"])
    report = import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    store.actor = Actor("zheng", "10.0.0.8")
    rollback(store, report.batch_id)
    accounts.add_user(store, "feng", "viewer", "password1")
    entries = store.audit_entries()
    assert [e.action for e in entries][:3] == ["user_add", "rollback", "import"]
    imp = entries[2]
    assert (imp.user, imp.client, imp.layer, imp.batch_id) == (
        "wu",
        "10.0.0.7",
        "demolition",
        report.batch_id,
    )
    assert imp.counts["added"] == 2
    assert (entries[1].user, entries[1].client, entries[1].batch_id) == ("zheng", "10.0.0.8", report.batch_id)
    assert store.batch(report.batch_id).user == "wu"
    grid_entry = [e for e in entries if e.action == "grid_replace"]
    assert len(grid_entry) == 1 and grid_entry[0].counts["added"] == 9
    buf = io.StringIO()
    write_csv(entries, buf, tz="Asia/Shanghai")
    text = buf.getvalue()
    assert text.startswith("\ufeff时间 (Asia/Shanghai),用户") and "10.0.0.7" in text and "回滚" in text


def test_a_write_that_fails_leaves_no_audit_entry(gridded_store, tmp_path):
    store = gridded_store
    n = len(store.audit_entries())
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError):
        import_file(store, "demolition", bad)
    with pytest.raises(Conflict):
        accounts.add_user(store, "x1", "viewer", "password1")
        accounts.add_user(store, "x1", "viewer", "password1")
    assert [e.action for e in store.audit_entries()][: len(store.audit_entries()) - n] == ["user_add"]


def test_a_store_of_the_second_schema_gains_the_failed_login_records(tmp_path):
    with open_test_store(tmp_path / "v2") as store:
        accounts.add_user(store, "admin", "admin", "password1")
    con = sqlite3.connect(tmp_path / "v2" / "gridwatch.gpkg")
    con.executescript("DROP TABLE gw_logins; UPDATE gw_meta SET value='2' WHERE key='schema';")
    con.close()
    with open_test_store(tmp_path / "v2") as store:
        assert store.get_user("admin").failed_logins == 0
        with pytest.raises(accounts.LoginFailed):
            accounts.authenticate(store, "admin", "wrong-one", client="10.0.0.1")
        assert store.get_user("admin").failed_logins == 1


def test_a_store_of_the_first_schema_gains_the_account_tables(tmp_path, grid_shp):
    with open_test_store(tmp_path / "old") as store:
        import_file(store, "grid", grid_shp)
    path = tmp_path / "old" / "gridwatch.gpkg"
    con = sqlite3.connect(path)
    con.executescript(
        "DROP TABLE gw_users; DROP TABLE gw_tokens; DROP TABLE gw_audit;"
        "UPDATE gw_meta SET value='1' WHERE key='schema';"
    )
    con.close()
    with open_test_store(tmp_path / "old") as store:
        assert store.list_users() == []
        accounts.add_user(store, "admin", "admin", "password1")
        assert store.get_user("admin").role == "admin"
        assert len(store.batches()) == 1


def test_user_and_token_commands(tmp_path, monkeypatch, capsys, store_url):
    data = str(tmp_path / "d")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    assert main(["--data", data, "user", "add", "admin", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--data", data, "user", "add", "li", "--password-stdin"]) == 2
    assert "至少 8 个字符" in capsys.readouterr().err
    assert main(["--data", data, "user", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["role"]) for u in listed] == [("admin", "admin")]
    assert "password" not in listed[0]
    assert main(["--data", data, "token", "add", "admin", "--label", "cron"]) == 0
    secret = capsys.readouterr().out.split()[-1]
    with open_test_store(data) as store:
        assert accounts.token_user(store, secret).name == "admin"
    assert main(["--data", data, "token", "revoke", "--id", "1"]) == 0
    assert main(["--data", data, "user", "disable", "admin"]) == 0
    assert main(["--data", data, "user", "disable", "ghost"]) == 2
    capsys.readouterr()
    assert main(["--data", data, "audit", "--csv"]) == 0
    out = capsys.readouterr().out
    assert "停用用户" in out and "撤销令牌" in out and "新建用户" in out
    assert "s3cret-pass" not in out
    with open_test_store(data) as store:
        assert accounts.token_user(store, secret) is None
        assert store.audit_entries()[0].client == "cli"


def test_every_action_and_count_the_code_records_has_a_label():
    """The audit page and its CSV show each action and count in words, in Chinese and English:
    every action name and count key written anywhere (``record_audit("…", counts={"…": …})``,
    and ``task_<kind>`` of a task's events) has its labels."""
    import re
    from pathlib import Path

    from geo.output.audit import ACTIONS, COUNTS
    from geo.store.interface.tasks import EVENT_KINDS

    root = Path(__file__).resolve().parent.parent
    actions: set[str] = set()
    counts: set[str] = set()
    for folder in ("geo", "web"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            actions |= set(re.findall(r'audit\(\s*"([a-z_]+)"', text))
            for block in re.findall(r"counts=\{([^}]*)\}", text):
                counts |= set(re.findall(r'"([a-z_]+)":', block))
    actions |= {f"task_{k}" for k in EVENT_KINDS if k != "created"}  # created: task_create
    assert {"task_create", "photo_add", "patrol_add", "user_area"} <= actions  # the scan sees them
    assert actions - set(ACTIONS) == set()
    assert {"task", "photo", "patrol"} <= counts
    assert counts - set(COUNTS) == set()


def test_the_audit_csv_shows_words_not_codes(gridded_store):
    from geo.imports.patrols import file_patrol

    store = gridded_store
    file_patrol(store, "boss", units=COMM_A)
    for lang, words in (
        ("zh", ("提交巡查", "无异常", "巡查", "网格数")),
        ("en", ("patrol filed", "nothing found")),
    ):
        buf = io.StringIO()
        write_csv(store.audit_entries(), buf, lang)
        text = buf.getvalue()
        assert all(w in text for w in words), (lang, text)
        assert "patrol_add" not in text and "nothing_found" not in text
