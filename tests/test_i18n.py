"""Language: Simplified Chinese by default, English on request (remembered), every marked string
translated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.needs("translations")
def test_chinese_by_default_english_on_request(client):
    zh = client.get("/?tiles=none").get_data(as_text=True)
    assert "图层" in zh and "违法建设" in zh and 'lang="zh-CN"' in zh
    en = client.get("/?tiles=none&lang=en").get_data(as_text=True)
    assert "Layer" in en and "Illegal construction" in en and "Completion rate" in en and 'lang="en"' in en
    assert "outside every grid" in en
    # remembered in a cookie for the next page
    again = client.get("/stats").get_data(as_text=True)
    assert "Statistics" in again and "中文" in again
    back = client.get("/?tiles=none&lang=zh").get_data(as_text=True)
    assert "图层" in back


@pytest.mark.needs("translations")
def test_map_labels_follow_the_language(client):
    import json

    page = client.get("/?tiles=none&lang=en").get_data(as_text=True)
    config = json.loads(re.search(r'id="gw-map-config">(.*?)</script>', page, re.S)[1])
    assert config["labels"]["rate"] == "Completion rate"
    assert config["layers"][0]["label"] == "Illegal construction"
    assert {f["label"] for f in config["layers"][0]["fields"]} >= {"Case id", "Address"}
    assert config["levels"][0] == {"name": "grid", "label": "Unit grid"}


def _marked() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.joinpath("templates").glob("*.html"), *ROOT.joinpath("web").glob("*.py")]:
        found |= set(re.findall(r'_\("([^"]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_marked_string_has_an_english_translation():
    with open(ROOT / "translations" / "en" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh)
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(s for s in _marked() if not translated.get(s))
    assert missing == [], f"no English for: {missing}"


@pytest.mark.slow
@pytest.mark.needs("translations")
@pytest.mark.parametrize("path", ["/stats", "/upload", "/batches"])
def test_pages_have_language_switch(client, path):
    assert "English" in client.get(path).get_data(as_text=True)


@pytest.mark.needs("translations")
def test_stats_and_batches_in_english(client):
    stats = client.get("/stats?lang=en&level=community").get_data(as_text=True)
    assert (
        "Lagging units" in stats and "Illegal construction" in stats and "Completion by street (%)" in stats
    )
    batches = client.get("/batches?lang=en").get_data(as_text=True)
    assert "Roll back" in batches and "Unit grid" in batches


@pytest.mark.needs("translations")
def test_upload_page_in_one_language(client):
    import json

    en = client.get("/upload?lang=en").get_data(as_text=True)
    assert "Upload a survey" in en and "Import report" in en and "Rejected rows" in en
    assert '<option value="demolition" selected>Illegal construction</option>' in en
    # no Chinese left beside the English, but the link back to Chinese
    assert re.findall(r"[\u4e00-\u9fff]+", en) == ["中文"]
    config = json.loads(re.search(r'id="gw-upload-config">(.*?)</script>', en, re.S)[1])
    assert config["lang"] == "en" and config["labels"]["rowsRead"] == "Rows read"
    assert config["sources"]["inferred"] == "inferred from the coordinates"
    zh = client.get("/upload?lang=zh").get_data(as_text=True)
    assert (
        "上传调查数据" in zh
        and "被拒绝的行" in zh
        and '<option value="demolition" selected>违法建设</option>' in zh
    )
    assert re.findall(r"\b(?:Upload|Import report|Rejected|Reason|Confirm|Discard|Encoding)\b", zh) == []
    config = json.loads(re.search(r'id="gw-upload-config">(.*?)</script>', zh, re.S)[1])
    assert config["lang"] == "zh" and config["labels"]["rowsRead"] == "读取行数"
