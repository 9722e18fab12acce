"""Names of administrative divisions by GB/T 2260 code, for validation, forms, the inbox, messages and the map.

The data file `shared/data/regions_32.json` lists Jiangsu in full (the province, its 13 prefecture-level cities and
their county-level divisions: districts, county-level cities, counties) and only the 34 provincial-level divisions
elsewhere. A code outside Jiangsu is therefore not "known" itself; its name falls back to its province's name, and
its validity is decided by the province-prefix rule of `region_code_problem` (at the end of this module).

The file is read once per process (`functools.cache`); every function is a pure lookup on that table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Literal, TypedDict, cast

Level = Literal["province", "city", "county"]

JIANGSU = "320000"
DATA_FILE = "regions_32.json"


@dataclass(frozen=True, slots=True)
class Region:
    """One administrative division: its six-digit code, names, level and the code of the division above it."""

    code: str
    name_zh: str
    name_en: str
    level: Level
    parent: str | None

    @property
    def label(self) -> str:
        """`中文 / English`, e.g. "玄武区 / Xuanwu District"."""
        return f"{self.name_zh} / {self.name_en}"


class PickerCounty(TypedDict):
    code: str
    name_zh: str
    name_en: str


class PickerCity(TypedDict):
    code: str
    name_zh: str
    name_en: str
    counties: list[PickerCounty]


class PickerProvince(TypedDict):
    code: str
    name_zh: str
    name_en: str


class PickerData(TypedDict):
    """What a page needs for city → county pickers, and the names of every province for other codes."""

    province: PickerProvince
    cities: list[PickerCity]
    provinces: list[PickerProvince]
    source: str


class _RawRegion(TypedDict):
    code: str
    name_zh: str
    name_en: str
    level: Level
    parent: str | None


class _RawFile(TypedDict):
    source: str
    regions: list[_RawRegion]


@cache
def _raw() -> _RawFile:
    text = files("shared").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return cast(_RawFile, json.loads(text))


@cache
def _table() -> Mapping[str, Region]:
    return {
        raw["code"]: Region(code=raw["code"], name_zh=raw["name_zh"], name_en=raw["name_en"], level=raw["level"],
                            parent=raw["parent"])
        for raw in _raw()["regions"]
    }


@cache
def _children() -> Mapping[str, tuple[Region, ...]]:
    children: dict[str, list[Region]] = {}
    for item in _table().values():
        if item.parent is not None:
            children.setdefault(item.parent, []).append(item)
    return {parent: tuple(sorted(items, key=lambda r: r.code)) for parent, items in children.items()}


def _is_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()


def region(code: str) -> Region | None:
    """The division with exactly this code, or None when the file does not list it."""
    return _table().get(code)


def is_known(code: str) -> bool:
    """Whether the file lists this exact code (Jiangsu's divisions and the 34 provincial-level ones)."""
    return code in _table()


def nearest(code: str) -> Region | None:
    """The most precise listed division containing `code`: itself, else its city, else its province.

    "330106" (a district of Hangzhou, not listed) gives Zhejiang; "320101" (Nanjing's statistical 市辖区) gives
    Nanjing; a code whose first two digits name no province gives None."""
    if not _is_code(code):
        return None
    table = _table()
    for candidate in (code, code[:4] + "00", code[:2] + "0000"):
        if candidate in table:
            return table[candidate]
    return None


def name_zh(code: str) -> str | None:
    """Chinese name of the code's nearest listed division (see `nearest`), or None if none contains it."""
    found = nearest(code)
    return found.name_zh if found else None


def name_en(code: str) -> str | None:
    """English (pinyin) name of the code's nearest listed division (see `nearest`), or None."""
    found = nearest(code)
    return found.name_en if found else None


def label(code: str, *, with_city: bool = False) -> str:
    """Display text for a code, zh-CN first: "玄武区 / Xuanwu District".

    `with_city` puts the city before a county ("南京市 鼓楼区 / Gulou District, Nanjing"), which tells apart the
    two 鼓楼区 of Nanjing and Xuzhou. A code not listed itself shows its nearest listed division and the code:
    "浙江省 / Zhejiang Province (330106)"; a code no listed division contains shows as the bare code."""
    found = nearest(code)
    if found is None:
        return code
    if found.code != code:
        return f"{found.label} ({code})"
    if with_city and found.level == "county" and found.parent is not None:
        city = _table()[found.parent]
        return f"{city.name_zh} {found.name_zh} / {found.name_en}, {city.name_en}"
    return found.label


def city_of(code: str) -> str | None:
    """The code of the listed prefecture-level city that `code` is or lies in; None for a province or a code in no
    listed city (outside Jiangsu)."""
    if not _is_code(code):
        return None
    found = _table().get(code[:4] + "00")
    return found.code if found is not None and found.level == "city" else None


def province_of(code: str) -> str | None:
    """The code of the listed provincial-level division that `code` lies in, or None."""
    if not _is_code(code):
        return None
    found = _table().get(code[:2] + "0000")
    return found.code if found is not None else None


def counties_of(city_code: str) -> tuple[Region, ...]:
    """The county-level divisions of a city, by code; empty for a code that is not a listed city."""
    found = _table().get(city_code)
    if found is None or found.level != "city":
        return ()
    return _children().get(city_code, ())


def cities(province_code: str = JIANGSU) -> tuple[Region, ...]:
    """The listed prefecture-level cities of a province, by code (Jiangsu's 13 by default)."""
    return tuple(r for r in _children().get(province_code, ()) if r.level == "city")


def provinces() -> tuple[Region, ...]:
    """The 34 provincial-level divisions, by code."""
    return tuple(sorted((r for r in _table().values() if r.level == "province"), key=lambda r: r.code))


def prefix_of(code: str) -> str:
    """The code prefix that every code `code` covers starts with: "32" for a province, "3201" for a city, the
    code itself for a county. Meant for `LIKE 'prefix%'` or range filters in repositories."""
    if not _is_code(code):
        raise ValueError(f"not a six-digit region code: {code!r}")
    if code[2:] == "0000":
        return code[:2]
    if code[4:] == "00":
        return code[:4]
    return code


def covers(prefix_code: str, code: str) -> bool:
    """Whether `prefix_code` is `code` or a division above it: a province covers every code of the province, a
    city its counties, a county only itself. Works on any GB/T 2260 code, listed or not."""
    if not (_is_code(prefix_code) and _is_code(code)):
        return False
    return code.startswith(prefix_of(prefix_code))


@cache
def picker_data() -> PickerData:
    """Jiangsu's city → county tree and the names of the provinces, for pages' pickers and labels."""
    province = _table()[JIANGSU]
    return {
        "province": {"code": province.code, "name_zh": province.name_zh, "name_en": province.name_en},
        "cities": [
            {"code": city.code, "name_zh": city.name_zh, "name_en": city.name_en,
             "counties": [{"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en}
                          for c in counties_of(city.code)]}
            for city in cities()
        ],
        "provinces": [{"code": p.code, "name_zh": p.name_zh, "name_en": p.name_en} for p in provinces()],
        "source": _raw()["source"],
    }


@cache
def picker_json() -> str:
    """`picker_data()` as compact JSON (UTF-8 text, Chinese unescaped), ready to serve or inline in a page."""
    return json.dumps(picker_data(), ensure_ascii=False, separators=(",", ":"))


# --- which six-digit codes are valid at which level (validation of reports, units and bodies) ---------------

RegionLevel = Level  # the name callers of region_code_problem use

# GB/T 2260 provinces: Beijing 11 … Xinjiang 65, Taiwan 71, Hong Kong 81, Macao 82.
PROVINCE_PREFIXES = frozenset(
    ["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
     "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
     "71", "81", "82"]
)
# Hong Kong, Macao and Taiwan have no city level: their districts are 810001, 820001, ...
NO_CITY_LEVEL = frozenset(["71", "81", "82"])


def region_code_problem(code: str, level: RegionLevel = "county") -> str | None:
    """Why `code` is not the code of a region at `level`, or None when it is one.

    A county is `PPCCXX` with `XX` not 00 and (outside Hong Kong, Macao and Taiwan) `CC` not 00; a city is `PPCC00`
    with `CC` not 00; a province is `PP0000`. `PP` must be a province of GB/T 2260.
    """
    if len(code) != 6 or not code.isdigit():
        return "应为 6 位数字的县级行政区划代码 / must be a six-digit county-level region code" if level == "county" \
            else "应为 6 位数字的行政区划代码 / must be a six-digit region code"
    if code[:2] not in PROVINCE_PREFIXES:
        return f"前两位 {code[:2]} 不是有效的省级代码 / {code[:2]} is not a valid province code"
    if level == "county":
        if code[4:6] == "00" or (code[2:4] == "00" and code[:2] not in NO_CITY_LEVEL):
            return ("应为县级代码,而非省级或地市级代码 / must be a county-level code, "
                    "not a province or city code")
        return None
    if level == "city":
        if code[:2] in NO_CITY_LEVEL:
            return f"{code[:2]} 没有地市级 / {code[:2]} has no city level"
        if code[2:4] == "00" or code[4:6] != "00":
            return "应为地市级代码,如 320100 / must be a city-level code such as 320100"
        return None
    if code[2:6] != "0000":
        return "应为省级代码,如 320000 / must be a province-level code such as 320000"
    return None
