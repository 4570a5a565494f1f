"""UN M49 continental regions of every ISO 3166-1 alpha-2 code, for intents by region,
and the names the dashboard shows for regions and countries.

The regions are M49's five (Africa, Americas, Asia, Europe, Oceania); Antarctica, which
M49 leaves outside them, is a region of its own here so that every code has one. Where
M49 draws a line that surprises (Cyprus and Türkiye in Western Asia, Russia in Eastern
Europe, Bouvet Island in South America, the French Southern Territories in Eastern
Africa), the mapping follows M49. Taiwan, which M49 does not list, is in Asia.
"""

from __future__ import annotations

from dataclasses import dataclass

import pycountry

AFRICA = "Africa"
AMERICAS = "Americas"
ASIA = "Asia"
EUROPE = "Europe"
OCEANIA = "Oceania"
ANTARCTICA = "Antarctica"
# For a code outside ISO 3166-1 (or none at all), so breakdowns still add up.
UNKNOWN_REGION = "Unknown"

REGIONS: tuple[str, ...] = (AFRICA, AMERICAS, ASIA, EUROPE, OCEANIA, ANTARCTICA)


@dataclass(frozen=True)
class PlaceName:
    """A name in English and in Simplified Chinese, for readers of either."""

    en: str
    zh: str


# Chinese names as in the UN's Chinese M49 table (美洲 covers both Americas there).
REGION_NAMES: dict[str, PlaceName] = {
    AFRICA: PlaceName("Africa", "非洲"),
    AMERICAS: PlaceName("Americas", "美洲"),
    ASIA: PlaceName("Asia", "亚洲"),
    EUROPE: PlaceName("Europe", "欧洲"),
    OCEANIA: PlaceName("Oceania", "大洋洲"),
    ANTARCTICA: PlaceName("Antarctica", "南极洲"),
    UNKNOWN_REGION: PlaceName("Unknown", "未知"),
}

# One line per M49 sub-region, so a reviewer can check each against the UN table.
_CODES_BY_REGION: dict[str, str] = {
    AFRICA: """
        DZ EG EH LY MA SD TN
        BI DJ ER ET IO KE KM MG MU MW MZ RE RW SC SO SS TF TZ UG YT ZM ZW
        AO CD CF CG CM GA GQ ST TD
        BW LS NA SZ ZA
        BF BJ CI CV GH GM GN GW LR ML MR NE NG SH SL SN TG
    """,
    AMERICAS: """
        AG AI AW BB BL BQ BS CU CW DM DO GD GP HT JM KN KY LC MF MQ MS PR SX TC TT VC VG VI
        BZ CR GT HN MX NI PA SV
        AR BO BR BV CL CO EC FK GF GS GY PE PY SR UY VE
        BM CA GL PM US
    """,
    ASIA: """
        KG KZ TJ TM UZ
        CN HK JP KP KR MN MO TW
        BN ID KH LA MM MY PH SG TH TL VN
        AF BD BT IN IR LK MV NP PK
        AE AM AZ BH CY GE IL IQ JO KW LB OM PS QA SA SY TR YE
    """,
    EUROPE: """
        BG BY CZ HU MD PL RO RU SK UA
        AX DK EE FI FO GB GG IE IM IS JE LT LV NO SE SJ
        AD AL BA ES GI GR HR IT ME MK MT PT RS SI SM VA
        AT BE CH DE FR LI LU MC NL
    """,
    OCEANIA: """
        AU CC CX HM NF NZ
        FJ NC PG SB VU
        FM GU KI MH MP NR PW UM
        AS CK NU PF PN TK TO TV WF WS
    """,
    ANTARCTICA: "AQ",
}

REGION_BY_ALPHA_2: dict[str, str] = {
    code: region for region, codes in _CODES_BY_REGION.items() for code in codes.split()
}


def region_of(alpha_2: str) -> str:
    """The continental region of an ISO 3166-1 alpha-2 code (any case)."""
    return REGION_BY_ALPHA_2.get(alpha_2.upper(), UNKNOWN_REGION)


def country_name(alpha_2: str) -> str | None:
    """The English name of an ISO 3166-1 alpha-2 code (any case), None for any other code.

    ISO's common name where it has one ("South Korea", not "Korea, Republic of"). There
    is no Chinese here: pycountry has none, and the dashboard asks the browser's
    Intl.DisplayNames, which carries CLDR's."""
    country = pycountry.countries.get(alpha_2=alpha_2.upper()) if len(alpha_2) == 2 else None
    if country is None:
        return None
    return getattr(country, "common_name", None) or country.name
