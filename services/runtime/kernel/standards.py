"""Codes from international standards that several services check: ISO 3166-1 countries,
ISO 4217 currencies and Harmonized System commodity codes."""

from __future__ import annotations

import re

import pycountry

HS_CODE_PATTERN = re.compile(r"^\d{6,10}$")
HS_HEADING_PATTERN = re.compile(r"^\d{4}$")


def is_country(alpha_2: str) -> bool:
    """An ISO 3166-1 alpha-2 code, upper case, e.g. "DE"."""
    return (
        len(alpha_2) == 2
        and alpha_2.isupper()
        and pycountry.countries.get(alpha_2=alpha_2) is not None
    )


def is_currency(alpha_3: str) -> bool:
    """An ISO 4217 code, upper case, e.g. "USD"."""
    return (
        len(alpha_3) == 3
        and alpha_3.isupper()
        and pycountry.currencies.get(alpha_3=alpha_3) is not None
    )


def normalise_hs_code(hs_code: str) -> str:
    """Digits only: "6704.20" and "670420" are the same code."""
    return hs_code.replace(".", "").replace(" ", "").strip()


def is_hs_code(hs_code: str) -> bool:
    """6 to 10 digits: the international 6-digit subheading, optionally national digits."""
    return bool(HS_CODE_PATTERN.match(hs_code))


def is_hs_heading(heading: str) -> bool:
    """The 4-digit HS heading, e.g. "6704"."""
    return bool(HS_HEADING_PATTERN.match(heading))


def hs_heading(hs_code: str) -> str:
    return hs_code[:4]


def hs_chapter(hs_code: str) -> str:
    return hs_code[:2]
