"""Photos on features: each format stored as pixels only, EXIF time and position read, the
hostile files refused with nothing stored, the routes' roles, and ``store copy`` carrying the
photos (files checked) -- on both backends."""

from __future__ import annotations

import io
import resource
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from geo.errors import InputError, NotFound, TooLarge
from geo.imports.importer import import_file
from geo.imports.photos import add_photo
from geo.reading import photos as engine
from geo.store import accounts
from geo.store.interface.photos import PHOTOS_DIR
from tests.helpers.builders import X0, Y0, grid_frame, points_frame, write_shp
from tests.helpers.postgis import open_test_store
from tests.helpers.web import PASSWORDS, Session

pytestmark = pytest.mark.backends

ROLE_OF = {"admin": "admin", "surveyor": "surveyor", "surveyor2": "surveyor", "viewer": "viewer"}


# images written by the tests -----------------------------------------------------------------
def _picture(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A picture with a gradient and a block, so that orientation and pixels can be checked."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, np.full_like(x, 90)], axis=2)
    rgb[: h // 3, : w // 3] = (250, 20, 20)  # red block at the top left
    im = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        im = im.convert("RGBA")
        alpha = np.full((h, w), 255, dtype=np.uint8)
        alpha[h // 2 :, :] = 100
        im.putalpha(Image.fromarray(alpha, "L"))
    return im


def _exif(
    when: str | None = None, offset: str | None = None, gps: dict[int, Any] | None = None, **more: Any
) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in more.items():
        exif[int(tag.strip("t"))] = value
    sub = exif.get_ifd(0x8769)
    if when is not None:
        sub[36867] = when
    if offset is not None:
        sub[36881] = offset
    if gps:
        exif.get_ifd(0x8825).update(gps)
    return exif


def _bytes(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    if isinstance(kw.get("exif"), Image.Exif):
        kw["exif"] = kw["exif"].tobytes()  # as bytes: an Exif of sub-IFDs only counts as empty
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


GPS = {1: "N", 2: (31.0, 52.0, 30.0), 3: "E", 4: (118.0, 30.0, 36.0)}


def _only_pixels(data: bytes) -> Image.Image:
    """Open a stored image and check it carries nothing but pixels."""
    im = Image.open(io.BytesIO(data))
    assert im.format in ("JPEG", "WEBP")
    assert not dict(im.getexif()), "EXIF survived"
    for key in ("exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"):
        assert not im.info.get(key), key
    assert b"<script" not in data and b"Exif" not in data
    im.load()
    return im


# the engine ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "mode", "kw"),
    [
        ("JPEG", "RGB", {"quality": 95}),
        ("PNG", "RGB", {}),
        ("PNG", "RGBA", {}),
        ("WEBP", "RGB", {"quality": 95}),
        ("WEBP", "RGBA", {"lossless": True}),
    ],
)
def test_each_format_is_stored_as_pixels_only(fmt: str, mode: str, kw: dict[str, Any]) -> None:
    im = _picture(mode=mode)
    extra: dict[str, Any] = {"exif": _exif("2024:05:01 10:20:30", gps=GPS), "icc_profile": b"\0" * 128}
    if fmt == "JPEG":
        extra["comment"] = b"<script>alert(1)</script>"
    raw = _bytes(im, fmt, **kw, **extra) + b"<script>alert(1)</script>"  # trailing data too
    photo = engine.process_photo(raw)
    stored = _only_pixels(photo.image)
    assert (photo.width, photo.height) == stored.size == im.size
    alpha = mode == "RGBA"
    assert photo.mime == ("image/webp" if alpha else "image/jpeg")
    want = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.int16)
    got = np.asarray(stored.convert("RGBA" if alpha else "RGB"), dtype=np.int16)
    assert np.abs(want - got).mean() < 4  # JPEG/WebP tolerance
    thumb = _only_pixels(photo.thumb)
    assert max(thumb.size) <= engine.PhotoLimits().thumb_px
    assert photo.taken_at == "2024-05-01T10:20:30"
    assert photo.lon == pytest.approx(118.51, abs=1e-6) and photo.lat == pytest.approx(31.875, abs=1e-6)


def test_exif_orientation_is_applied_and_time_offset_kept() -> None:
    im = _picture((60, 30))
    raw = _bytes(im, "JPEG", quality=95, exif=_exif("2023:12:31 23:59:01", "+08:00", t274=6))
    photo = engine.process_photo(raw)
    assert (photo.width, photo.height) == (30, 60)  # turned upright: 90° clockwise
    stored = np.asarray(Image.open(io.BytesIO(photo.image)).convert("RGB"), dtype=np.int16)
    assert stored[2, -3, 0] > 200 and stored[2, -3, 1] < 80  # the red block is now at the top right
    assert photo.taken_at == "2023-12-31T23:59:01+08:00"


@pytest.mark.parametrize(
    ("gps", "want"),
    [
        ({1: "S", 2: (33.0, 52.0, 4.0), 3: "W", 4: (70.0, 38.0, 24.0)}, (-70.64, -33.867778)),
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (118.0, 0.0, 0.0)}, None),  # latitude out of range
        ({1: "N", 2: (31.0, 75.0, 0.0), 3: "E", 4: (118.0, 0.0, 0.0)}, None),  # minutes ≥ 60
        ({1: "X", 2: (31.0, 0.0, 0.0), 3: "E", 4: (118.0, 0.0, 0.0)}, None),  # no such hemisphere
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, None),  # no fix
    ],
)
def test_gps_positions_are_read_or_left_out(gps: dict[int, Any], want: tuple[float, float] | None) -> None:
    photo = engine.process_photo(_bytes(_picture(), "JPEG", exif=_exif(gps=gps)))
    if want is None:
        assert photo.lon is None and photo.lat is None
    else:
        assert (photo.lon, photo.lat) == (pytest.approx(want[0], abs=1e-5), pytest.approx(want[1], abs=1e-5))


def test_exif_fields_holding_markup_are_never_passed_on() -> None:
    evil = "<script>alert(1)</script>"
    exif = _exif(evil, evil, t270=evil, t315=evil)  # ImageDescription, Artist
    photo = engine.process_photo(_bytes(_picture(), "JPEG", exif=exif))
    assert photo.taken_at is None and photo.warnings
    assert not any("<script" in w for w in photo.warnings)
    _only_pixels(photo.image)


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` × ``height`` (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    data = _bytes(_picture((400, 300)), "JPEG", quality=95)
    return data[: len(data) // 2]


HOSTILE = {
    "text named .jpg": (b"just some text, not a photo\n" * 10, "not_an_image"),
    "html/js polyglot": (
        b"<!DOCTYPE html><script>alert(1)</script>" + b"\xff\xd8\xff\xe0" + b"x" * 100,
        "not_an_image",
    ),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not_an_image"),
    "gif": (b"GIF89a" + b"\0" * 64, "not_an_image"),
    "truncated jpeg": (_truncated_jpeg(), "bad_image"),
    "png bomb": (_png_declaring(100_000, 100_000), "too_many_pixels"),
    "empty": (b"", "empty_file"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused(name: str) -> None:
    data, code = HOSTILE[name]
    with pytest.raises((InputError, TooLarge)) as caught:
        engine.process_photo(data)
    assert caught.value.code == code
    assert caught.value.zh and caught.value.en


def test_a_bomb_is_refused_before_its_pixels_are_decoded() -> None:
    """The 100,000 × 100,000 PNG (30 GB of pixels, a 1 KB file) is refused from its header: the
    peak memory of this process grows by less than 20 MB (measured: about 0 MB)."""
    bomb = _png_declaring(100_000, 100_000)
    assert len(bomb) < 2000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        with pytest.raises(TooLarge):
            engine.process_photo(bomb, engine.PhotoLimits())
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grew_kb < 20 * 1024


def test_caps_are_settable() -> None:
    data = _bytes(_picture((200, 100)), "PNG")
    with pytest.raises(TooLarge) as caught:
        engine.process_photo(data, engine.PhotoLimits(max_pixels=100 * 99))
    assert caught.value.code == "too_many_pixels"
    with pytest.raises(TooLarge) as caught:
        engine.process_photo(data, engine.PhotoLimits(max_bytes=len(data) - 1))
    assert caught.value.code == "photo_too_large"
    assert engine.process_photo(data, engine.PhotoLimits(max_pixels=200 * 100)).width == 200


# storage (both backends) ---------------------------------------------------------------------------
@pytest.fixture
def sites(tmp_path: Path, store: Any) -> Any:
    import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
    frame = points_frame([(X0 + 50, Y0 - 50), (X0 + 150, Y0 - 150)], 案件编号=["S1", "S2"])
    import_file(store, "demolition", write_shp(frame, tmp_path / "s" / "s.shp"))
    return store


def _photo_files(data: Path) -> list[Path]:
    folder = data / PHOTOS_DIR
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.slow
def test_a_photo_is_kept_with_its_row_and_audit_entry(sites: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    raw = _bytes(_picture(), "JPEG", exif=_exif("2024:05:01 10:20:30", "+08:00", gps=GPS))
    sites.actor.user = "surveyor"
    row, _ = add_photo(sites, data, "违法建设", 1, raw, note="  拆除前  ", version=1)
    assert row.id and row.layer == "demolition" and row.feature == 1 and row.feature_version == 1
    assert row.note == "拆除前" and row.uploaded_by == "surveyor"
    assert row.taken_at == "2024-05-01T10:20:30+08:00" and row.lon == pytest.approx(118.51)
    assert sites.photos("demolition", 1) == [row] and sites.photo(row.id) == row
    assert sites.photos("demolition", 2) == []
    files = _photo_files(data)
    assert [p.name for p in files] == [f"{row.sha256}-thumb.jpg", f"{row.sha256}.jpg"]
    assert not any(p.name.startswith(".part") for p in files)
    entry = sites.audit_entries(action="photo_add")[0]
    assert entry.user == "surveyor" and entry.layer == "demolition" and entry.counts["photo"] == row.id
    again, _ = add_photo(sites, data, "demolition", 2, raw)  # the same picture: one file, two rows
    assert again.sha256 == row.sha256 and len(_photo_files(data)) == 2 and sites.photo_uses(row.sha256) == 2


@pytest.mark.slow
def test_a_refused_photo_leaves_nothing(sites: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for bad, _code in HOSTILE.values():
        with pytest.raises((InputError, TooLarge)):
            add_photo(sites, data, "demolition", 1, bad)
    with pytest.raises(NotFound):  # no such feature
        add_photo(sites, data, "demolition", 99, _bytes(_picture(), "PNG"))
    with pytest.raises(InputError):  # no such layer
        add_photo(sites, data, "nope", 1, _bytes(_picture(), "PNG"))
    assert sites.photos("demolition", 1) == [] and _photo_files(data) == []


@pytest.mark.slow
def test_a_row_that_cannot_be_written_takes_its_files_away(
    sites: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    data = tmp_path / "data"

    def fail(row: Any) -> int:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(sites, "add_photo", fail)
    with pytest.raises(RuntimeError):
        add_photo(sites, data, "demolition", 1, _bytes(_picture(), "PNG"))
    assert _photo_files(data) == []


# over HTTP ------------------------------------------------------------------------------------------
@pytest.fixture
def site_data(tmp_path: Path, store_url: str | None) -> Path:
    data = tmp_path / "store"
    with open_test_store(data) as store:
        import_file(store, "grid", write_shp(grid_frame(), tmp_path / "g" / "g.shp"))
        for name, password in PASSWORDS.items():
            accounts.add_user(store, name, ROLE_OF[name], password)
        sites = points_frame([(X0 + 50, Y0 - 50)], 案件编号=["S1"])
        import_file(store, "demolition", write_shp(sites, tmp_path / "s" / "s.shp"))
    return data


def _post(
    session: Session,
    data: bytes,
    name: str = "photo.jpg",
    url: str = "/api/features/demolition/1/photos",
    **form: Any,
) -> Any:
    return session.request(
        "POST", url, data={"file": (io.BytesIO(data), name), **form}, content_type="multipart/form-data"
    )


@pytest.mark.slow
def test_photos_over_http(site_data: Path, make_app: Any) -> None:
    app = make_app(site_data)
    surveyor, viewer, anonymous = Session(app, "surveyor"), Session(app, "viewer"), Session(app, None)
    raw = _bytes(
        _picture(), "JPEG", exif=_exif("2024:05:01 10:20:30", gps=GPS, t270="<script>alert(1)</script>")
    )
    resp = _post(surveyor, raw, "<img src=x onerror=alert(1)>.png", note="<b>拆除前</b>", version="1")
    assert resp.status_code == 201, resp.json
    photo = resp.json
    assert "script" not in resp.get_data(as_text=True)  # nothing of the EXIF's markup is passed on
    assert photo["taken_at"] == "2024-05-01T10:20:30" and photo["feature_version"] == 1
    assert photo["note"] == "<b>拆除前</b>"  # kept as text; pages show it escaped
    listed = viewer.request("GET", "/api/features/违法建设/1/photos").json["photos"]
    assert [p["id"] for p in listed] == [photo["id"]] and listed[0]["lon"] == pytest.approx(118.51)
    full = viewer.request("GET", listed[0]["url"])
    assert full.status_code == 200 and full.mimetype == "image/jpeg"
    assert full.headers["X-Content-Type-Options"] == "nosniff"
    assert full.headers["Content-Disposition"] == f'inline; filename="photo-{photo["id"]}.jpg"'
    assert "private" in full.headers["Cache-Control"] and "max-age=86400" in full.headers["Cache-Control"]
    _only_pixels(full.data)
    again = viewer.request("GET", listed[0]["url"], headers={"If-None-Match": full.headers["ETag"]})
    assert again.status_code == 304
    thumb = viewer.request("GET", listed[0]["thumb_url"])
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.data)).size) <= 320
    # who may not
    assert _post(viewer, raw).status_code == 403
    assert _post(anonymous, raw).status_code == 401
    for url in (listed[0]["url"], listed[0]["thumb_url"], "/api/features/demolition/1/photos"):
        resp = anonymous.request("GET", url)
        assert resp.status_code == 401 and resp.json["error"] == "login_required"
    # ids that are not ids, paths that are not the photo's
    for url in (
        "/api/photos/../../secret_key",
        "/api/photos/..%2F..%2Fsecret_key",
        "/api/photos/1%2F..%2F..",
        "/api/photos/-1",
        "/api/photos/99999",
        "/api/photos/" + photo["sha256"],
        f"/static/../photos/{photo['sha256'][:2]}/{photo['sha256']}.jpg",
        f"/photos/{photo['sha256'][:2]}/{photo['sha256']}.jpg",
    ):
        resp = viewer.request("GET", url)
        assert resp.status_code in (400, 404), (url, resp.status_code)
        assert b"\xff\xd8" not in resp.data
    assert viewer.request("GET", listed[0]["url"] + "?size=../x").status_code == 400


@pytest.mark.slow
def test_hostile_uploads_get_a_clear_4xx_and_store_nothing(site_data: Path, make_app: Any) -> None:
    app = make_app(site_data, GRIDWATCH_PHOTO_MAX_BYTES=200_000)
    surveyor = Session(app, "surveyor")
    cases = {**{k: (v[0], v[1]) for k, v in HOSTILE.items()}}
    cases["over size"] = (_bytes(_picture((600, 600)), "PNG") + b"\0" * 300_000, "photo_too_large")
    for name, (data, code) in cases.items():
        resp = _post(surveyor, data, "x.jpg")
        assert 400 <= resp.status_code < 500, (name, resp.status_code)
        body = resp.json
        assert body["error"] in (code, "too_large"), (name, body)
        assert body["message_zh"] and body["message_en"], name
    resp = _post(surveyor, _bytes(_picture(), "PNG"), url="/api/features/demolition/42/photos")
    assert resp.status_code == 404 and resp.json["error"] == "feature_not_found"
    resp = surveyor.request(
        "POST", "/api/features/demolition/1/photos", data={}, content_type="multipart/form-data"
    )
    assert resp.status_code == 400 and resp.json["error"] == "no_file"
    assert surveyor.request("GET", "/api/features/demolition/1/photos").json["photos"] == []
    assert _photo_files(site_data) == []


# store copy ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.gpkg_only
def test_store_copy_carries_the_photos(sites: Any, tmp_path: Path, pg_db: str) -> None:
    """GeoPackage → PostGIS → GeoPackage: rows and files, each file checked."""
    from geo.store.backends import Location, open_store
    from geo.store.copy import copy_store

    pytest.importorskip("psycopg")
    data = tmp_path / "data"
    raw = _bytes(_picture(mode="RGBA"), "PNG")
    row, _ = add_photo(sites, data, "demolition", 1, raw, note="整改后")
    second, _ = add_photo(sites, data, "demolition", 2, _bytes(_picture((30, 30)), "JPEG"))
    source = Location(str(sites.location), data)
    sites.close()
    middle = Location(pg_db, tmp_path / "pgdata")
    back = Location(str(tmp_path / "back" / "gridwatch.gpkg"), tmp_path / "back")
    first = copy_store(source, middle)
    assert first.rows["photos"] == 2 and first.photo_files == 4
    copy_store(middle, back)
    for where in (middle, back):
        copied = open_store(where.store, data=where.data)
        try:
            assert copied.photos("demolition", 1) == [row] and copied.photo(second.id) == second
        finally:
            copied.close()
        assert [p.relative_to(where.data) for p in _photo_files(where.data)] == [
            p.relative_to(data) for p in _photo_files(data)
        ]
    # a third photo in the copy gets the next id
    reopened = open_store(back.store, data=back.data)
    try:
        third, _ = add_photo(reopened, back.data, "demolition", 1, _bytes(_picture((20, 20)), "JPEG"))
        assert third.id == second.id + 1
    finally:
        reopened.close()


@pytest.mark.slow
@pytest.mark.gpkg_only
def test_store_copy_refuses_a_missing_or_changed_photo_file(sites: Any, tmp_path: Path) -> None:
    from geo.errors import StoreError
    from geo.store.backends import Location
    from geo.store.copy import copy_store

    data = tmp_path / "data"
    row, _ = add_photo(sites, data, "demolition", 1, _bytes(_picture(), "JPEG"))
    source = Location(str(sites.location), data)
    sites.close()
    image = next(p for p in _photo_files(data) if "thumb" not in p.name)
    image.write_bytes(image.read_bytes() + b"x")
    with pytest.raises(StoreError) as caught:
        copy_store(source, Location(str(tmp_path / "c1" / "gridwatch.gpkg"), tmp_path / "c1"))
    assert caught.value.code == "photo_copy_failed"
    image.unlink()
    with pytest.raises(StoreError) as caught:
        copy_store(source, Location(str(tmp_path / "c2" / "gridwatch.gpkg"), tmp_path / "c2"))
    assert caught.value.code == "photo_missing"
    assert row.id


@pytest.mark.slow
def test_the_caps_are_read_from_the_environment(site_data: Path, make_app: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("GRIDWATCH_PHOTO_MAX_BYTES", "1K")
    monkeypatch.setenv("GRIDWATCH_PHOTO_MAX_PIXELS", "1000")
    app = make_app(site_data)
    assert (
        app.config["GRIDWATCH_PHOTO_MAX_BYTES"] == 1024 and app.config["GRIDWATCH_PHOTO_MAX_PIXELS"] == 1000
    )
    surveyor = Session(app, "surveyor")
    resp = _post(surveyor, _bytes(_picture((40, 30)), "PNG"))  # 1,200 pixels
    assert resp.status_code == 413 and resp.json["error"] == "too_many_pixels"
    resp = _post(surveyor, _bytes(_picture((30, 30)), "PNG") + b"\0" * 2000)
    assert resp.status_code == 413 and resp.json["error"] == "photo_too_large"
    assert _post(surveyor, _bytes(_picture((30, 30)), "JPEG", quality=50)).status_code == 201


def test_the_pixel_cap_is_put_back_after_a_photo():
    """Pillow's guard is process-wide: a photo's cap must not stay for every later image."""
    before = Image.MAX_IMAGE_PIXELS
    raw = _bytes(_picture(), "JPEG")
    engine.process_photo(raw, engine.PhotoLimits(max_pixels=10_000_000))
    assert before == Image.MAX_IMAGE_PIXELS
    with pytest.raises(TooLarge):
        engine.process_photo(raw, engine.PhotoLimits(max_pixels=100))
    assert before == Image.MAX_IMAGE_PIXELS
