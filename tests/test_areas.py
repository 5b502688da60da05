"""Accounts bound to an area: the codes checked against the grid, resolved to units, the
district flag, admins never bound, sessions ended and audited on a change -- on both backends."""

from __future__ import annotations

import pandas as pd
import pytest

from geo.errors import InputError
from geo.figures import areas
from geo.figures.hierarchy import hierarchy_from_grid, load_hierarchy
from geo.registry import grid_spec
from geo.store import accounts
from tests.helpers.builders import COMM_A, COMM_B

pytestmark = pytest.mark.backends

STREET = COMM_A[:9]
UNIT_B1 = f"{COMM_B}001"


def test_codes_resolve_to_their_units(gridded_store):
    store = gridded_store
    assert areas.area_units(store, [COMM_A]) == {f"{COMM_A}{i:03d}" for i in range(1, 7)}
    assert areas.area_units(store, [COMM_B]) == {f"{COMM_B}{i:03d}" for i in range(1, 4)}
    assert len(areas.area_units(store, [STREET])) == 9
    assert areas.area_units(store, [UNIT_B1, COMM_A]) == {UNIT_B1, *(f"{COMM_A}{i:03d}" for i in range(1, 7))}
    assert areas.check_area(store, f" {COMM_B} ,{UNIT_B1}，{COMM_B}") == (COMM_B, UNIT_B1)


def test_unknown_codes_are_refused_by_name(gridded_store):
    accounts.add_user(gridded_store, "li", "viewer", "longenough")
    for bad in ("340291001009", "340291", "<b>x</b>"):
        with pytest.raises(InputError) as err:
            areas.bind_area(gridded_store, "li", f"{COMM_A},{bad}")
        assert err.value.code == "unknown_area" and bad in err.value.zh and bad in err.value.en
        assert err.value.details["codes"] == [bad]
    assert gridded_store.get_user("li").area == ()
    with pytest.raises(InputError):
        areas.add_bound_user(gridded_store, "wu", "surveyor", "longenough", "nowhere")
    assert gridded_store.get_user("wu") is None


def test_binding_is_kept_ends_sessions_and_is_audited(gridded_store):
    store = gridded_store
    accounts.add_user(store, "li", "surveyor", "longenough")
    before = store.get_user("li").session_version
    user = areas.bind_area(store, "li", [COMM_B, UNIT_B1])
    again = store.get_user("li")
    assert again.area == user.area == (COMM_B, UNIT_B1) and not again.sees_district
    assert again.session_version == before + 1
    areas.bind_area(store, "li", [COMM_B, UNIT_B1])  # nothing changes: sessions stay
    assert store.get_user("li").session_version == before + 1
    areas.bind_area(store, "li", sees_district=True)
    flagged = store.get_user("li")
    assert flagged.sees_district and flagged.area == (COMM_B, UNIT_B1)
    assert flagged.session_version == before + 2
    accounts.set_password(store, "li", "another one")  # other changes keep the area
    assert store.get_user("li").area == (COMM_B, UNIT_B1)
    areas.bind_area(store, "li", "", sees_district=False)
    cleared = store.get_user("li")
    assert cleared.area == () and not cleared.sees_district and cleared.session_version == before + 4
    actions = [(e.action, e.detail) for e in store.audit_entries()]
    assert ("user_area", f"li: {COMM_B},{UNIT_B1}") in actions
    assert ("user_sees_district", "li: yes") in actions
    assert ("user_area", "li: -") in actions and ("user_sees_district", "li: no") in actions


def test_admins_are_never_bound(gridded_store):
    store = gridded_store
    with pytest.raises(InputError) as err:
        areas.add_bound_user(store, "boss", "admin", "longenough", COMM_A)
    assert err.value.code == "admin_bound"
    accounts.add_user(store, "boss", "admin", "longenough")
    with pytest.raises(InputError):
        areas.bind_area(store, "boss", COMM_A)
    areas.bind_area(store, "boss", sees_district=True)  # the flag alone is harmless
    areas.add_bound_user(store, "li", "viewer", "longenough", COMM_A)
    with pytest.raises(InputError) as err:
        accounts.set_role(store, "li", "admin")
    assert err.value.code == "admin_bound" and "li" in err.value.zh
    assert store.get_user("li").role == "viewer"
    areas.bind_area(store, "li", "")
    assert accounts.set_role(store, "li", "admin").role == "admin"


def test_scope_of_each_kind_of_account(gridded_store):
    store = gridded_store
    bound = areas.add_bound_user(store, "li", "viewer", "longenough", COMM_B)
    scope = areas.scope_of(store, bound)
    assert not scope.everything and scope.units == {f"{COMM_B}{i:03d}" for i in range(1, 4)}
    assert scope.allows(UNIT_B1) and not scope.allows(f"{COMM_A}001") and not scope.allows(None)
    assert scope.upper(load_hierarchy(store), "community") == {COMM_B}
    flagged = areas.bind_area(store, "li", sees_district=True)
    assert areas.scope_of(store, flagged).everything
    assert areas.scope_of(store, accounts.add_user(store, "wu", "viewer", "longenough")).everything
    assert areas.scope_of(store, None).everything
    assert scope.key() != areas.EVERYTHING.key()


def test_codes_lost_by_a_new_grid(gridded_store):
    store = gridded_store
    areas.add_bound_user(store, "li", "viewer", "longenough", f"{COMM_B},{COMM_A}001")
    areas.add_bound_user(store, "wu", "viewer", "longenough", COMM_A)
    attrs = store.read_attributes(grid_spec(), [f.name for f in grid_spec().fields])
    kept = attrs[~attrs["code"].str.startswith(COMM_B)]
    assert areas.codes_lost(store, hierarchy_from_grid(kept)) == {"li": [COMM_B]}
    assert areas.codes_lost(store, hierarchy_from_grid(attrs)) == {}


@pytest.mark.gpkg_only
def test_a_geopackage_of_schema_7_gets_areas(tmp_path, open_db):
    import sqlite3

    from geo.store.gpkg import GpkgStore

    data = tmp_path / "data"
    store = open_db(data)
    accounts.add_user(store, "li", "viewer", "longenough")
    path = store.path
    store.close()
    con = sqlite3.connect(path)  # what the code of schema 7 wrote: no gw_user_areas
    con.execute("DROP TABLE gw_user_areas")
    con.execute("UPDATE gw_meta SET value='7' WHERE key='schema'")
    con.commit()
    con.close()
    path.chmod(0o444)  # read-only: it cannot be upgraded and is still read
    try:
        with GpkgStore(path) as old:
            user = old.get_user("li")
            assert user is not None and user.area == () and not user.sees_district
    finally:
        path.chmod(0o644)
    with GpkgStore(path) as upgraded:
        assert upgraded._meta("schema") == "9"
        accounts.set_area(upgraded, "li", [COMM_A])
        assert upgraded.get_user("li").area == (COMM_A,)


def test_the_user_command_binds_and_lists_areas(gridded_store, runner, tmp_path, monkeypatch):
    import io
    import json

    data = str(tmp_path / "data")
    monkeypatch.setattr("sys.stdin", io.StringIO("longenough\n"))
    run = runner(
        "--data", data, "user", "add", "li", "--role", "surveyor", "--area", COMM_B, "--password-stdin"
    )
    assert run.code == 0, run.err
    assert gridded_store.get_user("li").area == (COMM_B,)
    listed = runner("--data", data, "user", "list")
    assert listed.code == 0 and "li" in listed.out and COMM_B in listed.out
    run = runner("--data", data, "user", "area", "li", "--set", f"{COMM_A},{UNIT_B1}")
    assert run.code == 0 and gridded_store.get_user("li").area == (COMM_A, UNIT_B1)
    run = runner("--data", data, "user", "area", "li", "--sees-district", "yes")
    assert run.code == 0 and gridded_store.get_user("li").sees_district
    as_json = json.loads(runner("--data", data, "user", "list", "--json").out)
    assert {"name": "li", "area": [COMM_A, UNIT_B1], "sees_district": True}.items() <= as_json[0].items()
    run = runner("--data", data, "user", "area", "li", "--clear", "--sees-district", "no")
    assert run.code == 0 and gridded_store.get_user("li").area == ()
    for bad in (
        ("user", "area", "li", "--set", "999999999"),
        ("user", "area", "li"),
        ("user", "area", "li", "--set", ","),
        ("user", "area", "nobody", "--set", COMM_A),
        ("user", "add", "boss", "--role", "admin", "--area", COMM_A, "--password-stdin"),
        ("user", "add", "wu", "--area", "nowhere", "--password-stdin"),
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO("longenough\n"))
        run = runner("--data", data, *bad)
        assert run.code != 0 and "Traceback" not in run.err, bad
        assert any("\u4e00" <= c <= "\u9fff" for c in run.err) and any(
            c.isascii() and c.isalpha() for c in run.err
        )
    assert "999999999" in runner("--data", data, "user", "area", "li", "--set", "999999999").err
    assert gridded_store.get_user("boss") is None and gridded_store.get_user("wu") is None


def test_a_grid_that_drops_a_bound_code_is_refused(gridded_store, tmp_path):
    from geo.errors import Conflict
    from geo.imports.importer import import_file
    from tests.helpers.builders import grid_frame, write_shp

    store = gridded_store
    areas.add_bound_user(store, "li", "viewer", "longenough", f"{COMM_B},{COMM_A}001")
    areas.add_bound_user(store, "wu", "surveyor", "longenough", f"{COMM_A}002")
    smaller = grid_frame()
    smaller = smaller[~smaller["网格编码"].isin([f"{COMM_A}001", f"{COMM_A}002"])]
    smaller = smaller[smaller["所属社区"] != "镜湖社区"]
    before = store.layer_generation(grid_spec())
    batches = len(store.batches())
    for dry_run in (True, False):
        with pytest.raises(Conflict) as err:
            import_file(
                store, "grid", write_shp(smaller, tmp_path / f"g{dry_run}" / "网格.shp"), dry_run=dry_run
            )
        assert err.value.code == "area_codes_lost"
        assert err.value.details["accounts"] == {"li": [f"{COMM_A}001", COMM_B], "wu": [f"{COMM_A}002"]}
        for text in (err.value.zh, err.value.en):
            assert "li" in text and "wu" in text and COMM_B in text and f"{COMM_A}002" in text
    assert store.layer_generation(grid_spec()) == before and len(store.batches()) == batches
    areas.bind_area(store, "li", f"{COMM_A}003")
    areas.bind_area(store, "wu", "")
    report = import_file(store, "grid", write_shp(smaller, tmp_path / "ok" / "网格.shp"))
    assert report.added + report.unchanged + report.updated == 4


def test_rows_outside_the_area_are_rejected_by_row(gridded_store, tmp_path):
    from geo.imports.importer import import_file
    from tests.helpers.builders import X0, Y0, points_frame, write_shp

    store = gridded_store
    areas.add_bound_user(store, "li", "surveyor", "longenough", COMM_B)
    areas.bind_area(store, "li", sees_district=True)  # seeing the district is no writing there
    sites = points_frame(
        [(X0 + 50, Y0 - 50), (X0 + 50, Y0 - 250), (X0 + 900, Y0 + 900), (X0 + 250, Y0 - 250)],
        案件编号=["A1", "B1", "FAR", "B2"],
    )
    shp = write_shp(sites, tmp_path / "s" / "s.shp")
    preview = import_file(store, "demolition", shp, user="li", dry_run=True)
    report = import_file(store, "demolition", shp, user="li")
    for r in (preview, report):
        assert r.added == 2 and r.rejected_total == 2
        outside = {x.row: x for x in r.rejected}
        assert set(outside) == {1, 3}
        assert f"{COMM_A}001" in outside[1].reason_zh and f"{COMM_A}001" in outside[1].reason_en
        assert "li" in outside[1].reason_zh and outside[1].value == f"{COMM_A}001"
        assert "不在任何单元网格内" in outside[3].reason_zh and "no unit grid" in outside[3].reason_en
        assert {
            "reason_zh": "不在账户的区域内",
            "reason_en": "outside the account's area",
            "field": None,
            "count": 2,
        } in r.rejected_by_reason
    spec = next(s for s in __import__("layers").survey_layers() if s.name == "demolition")
    assert sorted(store.read_attributes(spec)["gw_unit"]) == [f"{COMM_B}001", f"{COMM_B}003"]
    # an admin, an unbound surveyor or a file without an account write everywhere
    accounts.add_user(store, "wu", "surveyor", "longenough")
    sites2 = sites.copy()
    sites2["案件编号"] = ["W1", "W2", "W3", "W4"]
    assert import_file(store, "demolition", write_shp(sites2, tmp_path / "w" / "w.shp"), user="wu").added == 4
    only_a = sites.iloc[:1].copy()
    only_a["案件编号"] = ["A9"]
    with pytest.raises(InputError) as err:
        import_file(store, "demolition", write_shp(only_a, tmp_path / "a" / "a.shp"), user="li")
    assert err.value.code == "no_valid_rows"


def test_an_areas_figures_are_the_districts_filtered_to_its_units(gridded_store, tmp_path):
    """Independently recomputed: per level, the bound tally equals the sum over the area's unit
    grids of the district's unit-grid tally; the features counted are those of its units."""
    import random

    from geo.figures.tally import Filters, tally
    from geo.imports.importer import import_file
    from tests.helpers.builders import X0, Y0, points_frame, write_shp

    store = gridded_store
    rng = random.Random(13)
    xy = [(X0 + rng.uniform(1, 299), Y0 - rng.uniform(1, 299)) for _ in range(40)]
    statuses = [rng.choice(["已拆除", "未拆除", "已立案"]) for _ in xy]
    sites = points_frame(xy, 案件编号=[f"R{i}" for i in range(len(xy))], 当前状态=statuses)
    import_file(store, "demolition", write_shp(sites, tmp_path / "r" / "r.shp"))
    hier = load_hierarchy(store)
    grid_units = list(hier.grid["code"])
    district = tally(store, "grid", ["demolition"]).set_index("code")
    for trial in range(6):
        chosen = rng.sample([*grid_units, COMM_A, COMM_B, STREET], rng.randint(1, 4))
        units = areas.area_units(store, chosen)
        for level in hier.level_names:
            bound = tally(store, level, ["demolition"], filters=Filters(units=units))
            bound = bound[bound["code"] != "UNASSIGNED"].set_index("code")
            col = hier.code_column(level)
            expected: dict[str, tuple[int, int]] = {}
            for unit in units:
                up = str(hier.grid.loc[hier.grid["code"] == unit, col].iloc[0])
                t, c = expected.get(up, (0, 0))
                expected[up] = (
                    t + int(district.loc[unit, "demolition_total"]),
                    c + int(district.loc[unit, "demolition_completed"]),
                )
            got = {
                str(k): (int(r["demolition_total"]), int(r["demolition_completed"]))
                for k, r in bound.iterrows()
            }
            assert got == expected, (trial, chosen, level)
    # the district's own figures are untouched by the areas' (their row positions kept apart)
    for level in hier.level_names:
        again = tally(store, level, ["demolition"])
        assert int(again["demolition_total"].sum()) == len(xy)
    assert tally(store, "grid", ["demolition"]).set_index("code").equals(district)


def test_rolling_back_a_grid_that_would_drop_a_bound_code_is_refused(gridded_store, tmp_path):
    """A newer grid adds a unit; an account is bound to it; rolling that grid back would bring
    the older grid without the code: refused with the accounts named, nothing changed."""
    from geo.errors import Conflict
    from geo.imports.batches import rollback
    from geo.imports.importer import import_file
    from tests.helpers.builders import grid_frame, write_shp

    store = gridded_store
    bigger = grid_frame()
    extra = bigger.iloc[[0]].copy()
    extra["网格编码"] = [f"{COMM_A}099"]
    extra.geometry = extra.geometry.translate(0, 100)
    bigger = pd.concat([bigger, extra], ignore_index=True)
    newer = import_file(store, "grid", write_shp(bigger, tmp_path / "g2" / "网格.shp"))
    areas.add_bound_user(store, "zhao", "surveyor", "longenough", f"{COMM_A}099")
    before = store.layer_generation(grid_spec())
    with pytest.raises(Conflict) as err:
        rollback(store, newer.batch_id)
    assert err.value.code == "area_codes_lost" and err.value.details["accounts"] == {"zhao": [f"{COMM_A}099"]}
    assert store.layer_generation(grid_spec()) == before and store.batch(newer.batch_id).status == "active"
    areas.bind_area(store, "zhao", COMM_A)
    assert rollback(store, newer.batch_id).status == "rolled_back"
