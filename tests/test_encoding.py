"""Shapefile DBF encodings (geo.reading.encoding, geo.reading.charsets) and zip entry names (geo.reading.zips).

Real shapefiles are written with pyogrio the way surveyors' tools write them
(GBK text, no .cpg, LDID 0x00/0x57/0x4D), plus hand-built DBFs for cases GDAL
will not write (Big5, UTF-8 field names cut at 10 bytes).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.errors import EncodingError
from geo.reading.charsets import looks_like_mojibake, normalize_encoding
from geo.reading.encoding import EncodingGuess, decode_dbf_field_names, detect_dbf_encoding
from geo.reading.zips import zip_member_name
from tests.helpers.builders import write_shp

ADDRESSES = ["镜湖区赭山街道", "弋江区中山南路", "鸠江区湾里街道"]
STATUSES = ["已拆除", "存量", "整改中"]


def survey_frame() -> gpd.GeoDataFrame:
    """An illegal-building register with Chinese field names and values, CGCS2000 lon/lat."""
    return gpd.GeoDataFrame(
        {
            "违建地址": ADDRESSES,
            "当前状态": STATUSES,
            "MJ": [120.5, 33.0, 8.25],
        },
        geometry=shapely.points([(118.40, 31.30), (118.41, 31.31), (118.42, 31.32)]),
        crs=4490,
    )


def write_gbk_shp(tmp_path: Path, ldid: int | None, keep_cpg: bool = False, name: str = "违建") -> Path:
    """GBK shapefile; the .cpg is removed unless ``keep_cpg`` and the LDID byte is patched."""
    return write_shp(survey_frame(), tmp_path / f"{name}.shp", cpg=keep_cpg, ldid=ldid)


def make_dbf(fields: list[tuple[bytes, int]], records: list[list[bytes]], ldid: int = 0x00) -> bytes:
    """A minimal dBase III table of character fields (names given as raw bytes)."""
    record_len = 1 + sum(length for _, length in fields)
    header_len = 32 + 32 * len(fields) + 1
    out = bytearray(struct.pack("<B3BIHH", 0x03, 124, 1, 1, len(records), header_len, record_len))
    out += bytes(17) + bytes([ldid]) + bytes(2)
    for name, length in fields:
        out += name[:11].ljust(11, b"\x00") + b"C" + bytes(4) + bytes([length, 0]) + bytes(14)
    out += b"\x0d"
    for rec in records:
        out += b" " + b"".join(
            v.ljust(length, b" ")[:length] for v, (_, length) in zip(rec, fields, strict=True)
        )
    out += b"\x1a"
    return bytes(out)


def decode_values(dbf: Path, encoding: str) -> list[str]:
    """Values of the first character field, decoded with ``encoding`` from the raw bytes."""
    data = dbf.read_bytes()
    n, header_len, record_len = struct.unpack_from("<IHH", data, 4)
    length = data[32 + 16]
    return [
        data[header_len + i * record_len + 1 : header_len + i * record_len + 1 + length]
        .rstrip(b" ")
        .decode(encoding)
        for i in range(n)
    ]


# --------------------------------------------------------------------------- real shapefiles


@pytest.mark.parametrize("ldid", [0x00, 0x57])
def test_gbk_without_cpg_and_untrusted_ldid_is_detected_from_content(tmp_path: Path, ldid: int) -> None:
    shp = write_gbk_shp(tmp_path, ldid)
    dbf = shp.with_suffix(".dbf")
    guess = detect_dbf_encoding(dbf)
    assert guess == EncodingGuess(guess.encoding, "content", guess.note_zh, guess.note_en)
    assert guess.encoding == "gb18030"
    assert "GB18030" in guess.note_en and "GB18030" in guess.note_zh
    assert decode_values(dbf, guess.encoding) == ADDRESSES
    assert decode_dbf_field_names(dbf, guess.encoding) == ["违建地址", "当前状态", "MJ"]
    df = pyogrio.read_dataframe(shp, encoding=guess.encoding)
    assert list(df.columns[:3]) == ["违建地址", "当前状态", "MJ"]
    assert df["违建地址"].tolist() == ADDRESSES
    assert df["当前状态"].tolist() == STATUSES


@pytest.mark.parametrize("ldid", [0x4D, 0x7A])
def test_gbk_ldid_is_trusted(tmp_path: Path, ldid: int) -> None:
    shp = write_gbk_shp(tmp_path, ldid)
    guess = detect_dbf_encoding(shp.with_suffix(".dbf"))
    assert (guess.encoding, guess.source) == ("gb18030", "ldid")
    assert f"0x{ldid:02X}" in guess.note_en
    df = pyogrio.read_dataframe(shp, encoding=guess.encoding)
    assert df["违建地址"].tolist() == ADDRESSES


def test_dbf_given_as_bytes(tmp_path: Path) -> None:
    shp = write_gbk_shp(tmp_path, 0x00)
    data = shp.with_suffix(".dbf").read_bytes()
    assert detect_dbf_encoding(data).encoding == "gb18030"
    assert decode_dbf_field_names(data, "GBK")[:2] == ["违建地址", "当前状态"]


def test_gdal_default_read_of_ldid0_gbk_gives_flagged_mojibake(tmp_path: Path) -> None:
    shp = write_gbk_shp(tmp_path, 0x00)
    df = pyogrio.read_dataframe(shp)  # GDAL falls back to ISO-8859-1
    garbled_name = "违建地址".encode("gbk").decode("latin-1")
    assert garbled_name in df.columns
    assert looks_like_mojibake(garbled_name)
    values = df[garbled_name].tolist()
    assert values == [a.encode("gbk").decode("latin-1") for a in ADDRESSES]
    assert all(looks_like_mojibake(v) for v in values)
    # the right encoding gives text that is not flagged
    good = pyogrio.read_dataframe(shp, encoding=detect_dbf_encoding(shp.with_suffix(".dbf")).encoding)
    assert not any(looks_like_mojibake(v) for v in good["违建地址"])


def test_gbk_with_cpg(tmp_path: Path) -> None:
    shp = write_gbk_shp(tmp_path, None, keep_cpg=True)
    cpg = shp.with_suffix(".cpg").read_text()
    assert cpg.strip().upper() == "GBK"
    guess = detect_dbf_encoding(shp.with_suffix(".dbf"), cpg=cpg)
    assert (guess.encoding, guess.source) == ("gb18030", "cpg")


def test_utf8_shapefile_with_cpg(tmp_path: Path) -> None:
    shp = tmp_path / "utf8.shp"
    # UTF-8 field names hold 3 Chinese characters at most: short ASCII codes here
    frame = survey_frame().rename(columns={"违建地址": "DZ", "当前状态": "ZT"})
    frame.to_file(shp, engine="pyogrio", encoding="UTF-8")
    cpg = shp.with_suffix(".cpg").read_text()
    dbf = shp.with_suffix(".dbf")
    guess = detect_dbf_encoding(dbf, cpg=cpg)
    assert (guess.encoding, guess.source) == ("utf-8", "cpg")
    assert decode_values(dbf, guess.encoding) == ADDRESSES
    # without the .cpg the bytes still say UTF-8
    shp.with_suffix(".cpg").unlink()
    guess = detect_dbf_encoding(dbf)
    assert (guess.encoding, guess.source) == ("utf-8", "content")
    df = pyogrio.read_dataframe(shp, encoding=guess.encoding)
    assert df["DZ"].tolist() == ADDRESSES
    assert df["ZT"].tolist() == STATUSES


def test_cpg_that_lies_about_utf8_is_not_trusted(tmp_path: Path) -> None:
    shp = write_gbk_shp(tmp_path, 0x00, keep_cpg=True)
    shp.with_suffix(".cpg").write_text("UTF-8")
    dbf = shp.with_suffix(".dbf")
    guess = detect_dbf_encoding(dbf, cpg=shp.with_suffix(".cpg").read_text())
    assert (guess.encoding, guess.source) == ("gb18030", "content")
    assert ".cpg" in guess.note_en and "UTF-8" in guess.note_en
    assert ".cpg" in guess.note_zh
    assert decode_values(dbf, guess.encoding) == ADDRESSES
    df = pyogrio.read_dataframe(shp, encoding=guess.encoding)
    assert df["违建地址"].tolist() == ADDRESSES


def test_lying_cpg_falls_back_to_trusted_ldid(tmp_path: Path) -> None:
    shp = write_gbk_shp(tmp_path, 0x4D)
    guess = detect_dbf_encoding(shp.with_suffix(".dbf"), cpg="UTF-8")
    assert (guess.encoding, guess.source) == ("gb18030", "ldid")
    assert "UTF-8" in guess.note_en


def test_gbk_claim_over_utf8_bytes_is_not_trusted(tmp_path: Path) -> None:
    shp = tmp_path / "u.shp"
    survey_frame().rename(columns={"违建地址": "DZ", "当前状态": "ZT"}).to_file(shp, engine="pyogrio")
    data = bytearray(shp.with_suffix(".dbf").read_bytes())
    data[29] = 0x4D
    assert detect_dbf_encoding(bytes(data), cpg="GBK").encoding == "utf-8"
    guess = detect_dbf_encoding(bytes(data))
    assert (guess.encoding, guess.source) == ("utf-8", "content")
    assert "0x4D" in guess.note_en


def test_override_wins(tmp_path: Path) -> None:
    shp = write_gbk_shp(tmp_path, 0x00)
    guess = detect_dbf_encoding(shp.with_suffix(".dbf"), cpg="UTF-8", override="GBK")
    assert (guess.encoding, guess.source) == ("gb18030", "override")
    with pytest.raises(EncodingError) as exc:
        detect_dbf_encoding(shp.with_suffix(".dbf"), override="no-such-codec")
    assert exc.value.zh and exc.value.en


def test_ascii_only_table_reads_as_utf8(tmp_path: Path) -> None:
    shp = tmp_path / "ascii.shp"
    gpd.GeoDataFrame(
        {"BH": ["WJ-001", "WJ-002"], "MJ": [1.0, 2.0]}, geometry=shapely.points([(1, 2), (3, 4)]), crs=4548
    ).to_file(shp, engine="pyogrio", encoding="GBK")
    shp.with_suffix(".cpg").unlink()
    guess = detect_dbf_encoding(shp.with_suffix(".dbf"))
    assert (guess.encoding, guess.source) == ("utf-8", "content")
    assert "ASCII" in guess.note_en


# --------------------------------------------------------------------------- hand-built DBFs


def test_cpg_spellings() -> None:
    dbf = make_dbf([(b"DZ", 20)], [["赭山街道".encode("gbk")]])
    for cpg in ["GBK", "936", "CP936", "GB2312", "ANSI 936", " gbk\n", "\ufeffGBK"]:
        guess = detect_dbf_encoding(dbf, cpg=cpg)
        assert (guess.encoding, guess.source) == ("gb18030", "cpg"), cpg
    utf8 = make_dbf([(b"DZ", 20)], [["赭山街道".encode()]])
    for cpg in ["UTF-8", "utf8", "65001"]:
        guess = detect_dbf_encoding(utf8, cpg=cpg)
        assert (guess.encoding, guess.source) == ("utf-8", "cpg"), cpg


def test_unknown_cpg_falls_through_to_content() -> None:
    dbf = make_dbf([(b"DZ", 20)], [["赭山街道".encode("gbk")]])
    guess = detect_dbf_encoding(dbf, cpg="KLINGON")
    assert (guess.encoding, guess.source) == ("gb18030", "content")
    assert "KLINGON" in guess.note_en


def test_five_gbk_characters_fill_a_field_name() -> None:
    name = "违建面积"  # 8 bytes in GBK, 12 in UTF-8
    five = "所属社区名"  # 10 bytes in GBK: the limit
    dbf = make_dbf([(name.encode("gbk"), 10), (five.encode("gbk"), 10)], [["存量".encode("gbk"), b"A"]])
    assert decode_dbf_field_names(dbf, detect_dbf_encoding(dbf).encoding) == [name, five]


def test_utf8_field_name_cut_mid_character() -> None:
    cut = "违建面积".encode()[:10]  # what a 10-byte DBF header keeps
    dbf = make_dbf([(cut, 20)], [["镜湖区".encode()]])
    guess = detect_dbf_encoding(dbf)
    assert guess.encoding == "utf-8"
    assert decode_dbf_field_names(dbf, guess.encoding) == ["违建面"]


def test_field_name_invalid_in_encoding_raises() -> None:
    dbf = make_dbf([("违建".encode("gbk"), 10)], [[b"x"]])
    with pytest.raises(EncodingError):
        decode_dbf_field_names(dbf, "utf-8")


def test_big5_content() -> None:
    values = ["臺北市中正區重慶南路一段", "違章建築已拆除", "所屬街道"]
    dbf = make_dbf([(b"DZ", 40)], [[v.encode("big5")] for v in values])
    guess = detect_dbf_encoding(dbf)
    assert (guess.encoding, guess.source) == ("big5", "content")
    assert [bytes(v.encode("big5")).decode(guess.encoding) for v in values] == values


def test_undecidable_content_raises_bilingual_error() -> None:
    dbf = make_dbf([(b"DZ", 20)], [["Café crème".encode("cp1252")], ["Größe".encode("cp1252")]])
    with pytest.raises(EncodingError) as exc:
        detect_dbf_encoding(dbf)
    assert "--encoding" in exc.value.en and "--encoding" in exc.value.zh
    assert detect_dbf_encoding(dbf, cpg="1252").encoding == "cp1252"


def test_not_a_dbf_raises() -> None:
    with pytest.raises(EncodingError):
        detect_dbf_encoding(b"not a dbf")
    with pytest.raises(EncodingError):
        detect_dbf_encoding(Path("/nonexistent/x.dbf"))


def test_deleted_records_are_ignored() -> None:
    # the deleted record holds bytes no candidate encoding accepts
    dbf = bytearray(make_dbf([(b"DZ", 20)], [["镜湖区".encode("gbk")], [b"\x80\xff\x80"]]))
    header_len, record_len = struct.unpack_from("<HH", dbf, 8)
    dbf[header_len + record_len] = 0x2A  # mark the second record deleted
    assert detect_dbf_encoding(bytes(dbf)).encoding == "gb18030"


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from("违建地址镜湖区赭山街道弋江鸠湾里已拆除存量整改中社区网格员王芳号路"),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["gbk", "utf-8"]),
)
def test_content_detection_round_trips(values: list[str], codec: str) -> None:
    dbf = make_dbf([(b"DZ", 20)], [[v.encode(codec)] for v in values])
    guess = detect_dbf_encoding(dbf)
    assert guess.source == "content"
    assert [v.encode(codec).decode(guess.encoding) for v in values] == values


@pytest.mark.parametrize("text", ["鸠建", "鸠江"])
def test_gbk_bytes_that_are_valid_utf8_for_an_unassigned_character_are_read_as_gbk(text: str) -> None:
    # 鸠建 in GBK is F0 AF BD A8: valid UTF-8, but for U+2FF68, which no character has
    raw = text.encode("gbk")
    raw.decode("utf-8")  # decodes without error
    dbf = make_dbf([(b"DZ", 20)], [[raw]])
    guess = detect_dbf_encoding(dbf)
    assert (guess.source, raw.decode(guess.encoding)) == ("content", text)


def test_normalize_encoding() -> None:
    assert normalize_encoding("GBK") == "gb18030"
    assert normalize_encoding("CP936") == "gb18030"
    assert normalize_encoding("UTF8") == "utf-8"
    assert normalize_encoding("1252") == "cp1252"
    assert normalize_encoding("big5") == "big5"
    with pytest.raises(EncodingError):
        normalize_encoding("nope")


NOT_TEXT = [
    "rot13",
    "zlib",
    "hex",
    "base64",
    "uu_codec",
    "bz2",
    "undefined",
    "unicode_escape",
    "raw_unicode_escape",
    "idna",
    "punycode",
    "utf-7",
    "mbcs",
    "utf-32",
    "no-such-codec",
    "\x00",
    "gbk\x1b[31m",
]


@pytest.mark.parametrize("name", NOT_TEXT)
def test_only_text_encodings_are_accepted(name: str) -> None:
    with pytest.raises(EncodingError) as err:
        normalize_encoding(name)
    assert err.value.status == 400 and err.value.code in ("unknown_encoding", "not_text_encoding")
    assert "\x1b" not in err.value.zh + err.value.en and "\x00" not in err.value.zh + err.value.en


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("utf-8-sig", "utf-8-sig"),
        ("GB2312", "gb18030"),
        ("GB18030", "gb18030"),
        ("cp950", "big5"),
        ("latin-1", "iso-8859-1"),
        ("cp1252", "cp1252"),
        ("ASCII", "ascii"),
        ("UTF-16LE", "utf-16-le"),
        ("utf_16_be", "utf-16-be"),
    ],
)
def test_text_encodings_by_any_name(name: str, codec: str) -> None:
    assert normalize_encoding(name) == codec


@pytest.mark.parametrize("name", NOT_TEXT)
def test_a_cpg_naming_no_text_encoding_is_ignored_with_a_note(tmp_path: Path, name: str) -> None:
    shp = write_gbk_shp(tmp_path, 0x00)
    guess = detect_dbf_encoding(shp.with_suffix(".dbf"), cpg=name)
    assert (guess.encoding, guess.source) == ("gb18030", "content")
    assert "ignored" in guess.note_en and "\x1b" not in guess.note_en + guess.note_zh


@pytest.mark.parametrize("name", ["rot13", "unicode_escape", "zlib"])
def test_an_override_naming_no_text_encoding_is_refused(tmp_path: Path, name: str) -> None:
    shp = write_gbk_shp(tmp_path, 0x00)
    with pytest.raises(EncodingError):
        detect_dbf_encoding(shp.with_suffix(".dbf"), override=name)
    with pytest.raises(EncodingError):
        decode_dbf_field_names(shp.with_suffix(".dbf"), name)


# --------------------------------------------------------------------------- zip entry names


def _zip_with_raw_names(path: Path, names: dict[str, bytes], extra: dict[str, bytes] | None = None) -> None:
    """Write entries under ASCII placeholders, then put the raw name bytes in place.

    Each placeholder has the same byte length as its raw name; no UTF-8 flag is
    set because the placeholders are ASCII, as with Chinese Windows zip tools.
    """
    with zipfile.ZipFile(path, "w") as zf:
        for placeholder in names:
            info = zipfile.ZipInfo(placeholder)
            if extra and placeholder in extra:
                info.extra = extra[placeholder]
            zf.writestr(info, b"data")
    data = path.read_bytes()
    for placeholder, raw in names.items():
        assert len(placeholder.encode("ascii")) == len(raw)
        data = data.replace(placeholder.encode("ascii"), raw)
    path.write_bytes(data)


@pytest.mark.parametrize("real", ["违建图斑/违建图斑.shp", "路.shp", "马路/停车点.dbf"])
def test_zip_member_gbk_name_without_utf8_flag(tmp_path: Path, real: str) -> None:
    raw = real.encode("gbk")
    placeholder = "p" * (len(raw) - 4) + ".shp"
    zpath = tmp_path / "gbk.zip"
    _zip_with_raw_names(zpath, {placeholder: raw})
    with zipfile.ZipFile(zpath) as zf:
        (info,) = zf.infolist()
    assert not info.flag_bits & 0x800
    assert info.filename == raw.decode("cp437")  # what Python shows
    assert zip_member_name(info) == real


def test_zip_member_utf8_name_without_flag(tmp_path: Path) -> None:
    real = "网格/网格.dbf"
    raw = real.encode()
    zpath = tmp_path / "u.zip"
    _zip_with_raw_names(zpath, {"q" * (len(raw) - 4) + ".dbf": raw})
    with zipfile.ZipFile(zpath) as zf:
        (info,) = zf.infolist()
    assert zip_member_name(info) == real


def test_zip_member_with_utf8_flag_and_ascii(tmp_path: Path) -> None:
    zpath = tmp_path / "flag.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("充电桩/充电桩.shp", b"x")  # Python sets the UTF-8 flag
        zf.writestr("data/parking.shp", b"x")
    with zipfile.ZipFile(zpath) as zf:
        infos = zf.infolist()
    assert infos[0].flag_bits & 0x800
    assert [zip_member_name(i) for i in infos] == ["充电桩/充电桩.shp", "data/parking.shp"]


def test_zip_member_unicode_path_extra_field(tmp_path: Path) -> None:
    real = "停车点.shp"
    raw = real.encode("gbk")
    utf8 = real.encode()
    extra = struct.pack("<HHBI", 0x7075, 5 + len(utf8), 1, zlib.crc32(raw)) + utf8
    placeholder = "s" * (len(raw) - 4) + ".shp"
    zpath = tmp_path / "x.zip"
    _zip_with_raw_names(zpath, {placeholder: raw}, extra={placeholder: extra})
    with zipfile.ZipFile(zpath) as zf:
        (info,) = zf.infolist()
    assert zip_member_name(info) == real


def test_zip_member_undecodable_name_is_kept() -> None:
    info = zipfile.ZipInfo(b"\xff\xfe.shp".decode("cp437"))
    assert zip_member_name(info) == info.filename


# --------------------------------------------------------------------------- mojibake


@pytest.mark.parametrize(
    "text",
    [
        "µØÖ·",
        "Ã¥Â°",
        "Î¥½¨µØÖ·",
        "镜湖区赭山街道".encode("gbk").decode("latin-1"),
        "镜湖区赭山街道".encode().decode("cp1252", errors="replace"),
        "已拆除".encode().decode("latin-1"),
    ],
)
def test_mojibake_is_flagged(text: str) -> None:
    assert looks_like_mojibake(text)


@pytest.mark.parametrize(
    "text",
    [
        "违建地址",
        "镜湖区赭山街道",
        "WJ-001",
        "",
        "Café",
        "Größe",
        "Crème brûlée",
        "São Paulo",
        "m²·a",
        "Ø20mm",
        "5×3m²",
    ],
)
def test_normal_text_is_not_flagged(text: str) -> None:
    assert not looks_like_mojibake(text)


GB2312_HANZI = [
    bytes([lead, trail]).decode("gb2312")
    for lead in range(0xB0, 0xF8)
    for trail in range(0xA1, 0xFF)
    if (lead, trail) not in {(0xD7, t) for t in range(0xFA, 0xFF)}
]


@pytest.mark.slow
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(GB2312_HANZI), min_size=2, max_size=12))
def test_common_chinese_misread_as_latin1_is_flagged(text: str) -> None:
    assert not looks_like_mojibake(text)
    assert looks_like_mojibake(text.encode("gbk").decode("latin-1"))
    assert looks_like_mojibake(text.encode("utf-8").decode("cp1252", errors="replace"))
