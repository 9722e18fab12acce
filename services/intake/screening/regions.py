"""Region codes of screening rounds (GB/T 2260): a round covers a province, a city or a county, and a unit belongs
to it when the unit's county code starts with the round's significant digits. Pure functions."""

from __future__ import annotations

from enum import StrEnum

from services.intake.validation import PROVINCE_PREFIXES, region_code_problem

# Hong Kong, Macao and Taiwan have no city level: their districts are 810001, 820001, ...
NO_CITY_LEVEL = frozenset({"71", "81", "82"})


class RegionLevel(StrEnum):
    province = "province"
    city = "city"
    county = "county"

    @property
    def digits(self) -> int:
        """How many leading digits a unit's county code shares with a region of this level."""
        return {RegionLevel.province: 2, RegionLevel.city: 4, RegionLevel.county: 6}[self]


def region_level(code: str) -> RegionLevel | None:
    """The level of a province (320000), city (320100) or county (320102) code; None when it is none of them."""
    if len(code) != 6 or not code.isdigit() or code[:2] not in PROVINCE_PREFIXES:
        return None
    if code[2:] == "0000":
        return RegionLevel.province
    if code[4:] == "00" and code[2:4] != "00" and code[:2] not in NO_CITY_LEVEL:
        return RegionLevel.city
    if region_code_problem(code) is None:
        return RegionLevel.county
    return None


def region_prefix(code: str) -> str:
    """The leading digits every county code inside region `code` starts with."""
    level = region_level(code)
    if level is None:
        raise ValueError(f"not a province, city or county code: {code}")
    return code[: level.digits]


def city_of(county: str) -> str:
    """The city code of a county code (for Hong Kong, Macao and Taiwan, which have no cities: the province)."""
    if county[:2] in NO_CITY_LEVEL:
        return f"{county[:2]}0000"
    return f"{county[:4]}00"
