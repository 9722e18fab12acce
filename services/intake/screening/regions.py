"""Region codes of screening rounds (GB/T 2260): a round covers a province, a city or a county, and a unit belongs
to it when the unit's county code starts with the round's significant digits (`shared.regions.prefix_of`). Any
province's codes are accepted, not only the ones `shared.regions` lists by name. Pure functions."""

from __future__ import annotations

from enum import StrEnum

from shared.regions import province_of

# Hong Kong, Macao and Taiwan have no city level: their districts are 810001, 820001, ...
NO_CITY_LEVEL = frozenset({"71", "81", "82"})


class RegionLevel(StrEnum):
    province = "province"
    city = "city"
    county = "county"


def region_level(code: str) -> RegionLevel | None:
    """The level of a province (320000), city (320100) or county (320102) code; None when it is none of them
    (not six digits, no such province, or a malformed lower part such as 320001)."""
    if len(code) != 6 or not code.isascii() or not code.isdigit() or province_of(code) is None:
        return None
    if code[2:] == "0000":
        return RegionLevel.province
    if code[2:4] == "00":
        return RegionLevel.county if code[:2] in NO_CITY_LEVEL else None
    if code[4:] == "00":
        return RegionLevel.city if code[:2] not in NO_CITY_LEVEL else None
    return RegionLevel.county


def city_code(county: str) -> str:
    """The city code of a county code, listed or not (for Hong Kong, Macao and Taiwan, which have no cities: the
    province); a bounded metrics label."""
    if county[:2] in NO_CITY_LEVEL:
        return f"{county[:2]}0000"
    return f"{county[:4]}00"
