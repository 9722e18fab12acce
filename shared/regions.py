"""Administrative region codes (GB/T 2260): which six-digit codes name a province, a city or a county.

One set of rules for every service: intake checks a report's and a unit's county, and a body that covers a
province, city or county can be checked with the same function. Messages are zh-CN first with English beside it.
"""

from __future__ import annotations

from typing import Literal

RegionLevel = Literal["province", "city", "county"]

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
