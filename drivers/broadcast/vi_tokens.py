"""The scanner: one pass over a notice finds every written form that is not read as written, by its shape."""

from __future__ import annotations

import re
from functools import lru_cache

from drivers.broadcast.vi_tables import ABBREVIATIONS, MONEY, ROADS, UNITS

NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[,.]\d+)?"
SIGN = r"(?:(?<![\w)\]])[-−+](?=\d))?"
WORD = r"[^\W\d_]+"


def _alt(keys: object) -> str:
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))  # type: ignore[arg-type]


_UNIT = _alt(UNITS)
_GROUPED = r"\d{1,3}(?:\.\d{3})+"
_MONEY = _alt(MONEY)
# Each shape, tried in this order at each position; the leftmost match wins, then the first shape listed.
SHAPES: list[tuple[str, str]] = [
    ("doc", r"(?<![\w/])\d{1,6}(?:/\d{4})?/[A-ZĐ][A-Za-zĐđ]*\d*(?:[-–][A-ZĐ][A-Za-zĐđ]*\d*)*(?![\w-])"),
    ("phone", r"(?<![\d.,/])(?:\+84[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,3}|0\d{2,4}(?:[ .-]?\d{2,4}){1,3}"
              r"|1[89]00[ .-]?\d{3,4}(?:[ .-]?\d{2,4})?)(?![\d/]|[,.]\d)"),
    ("chain", r"(?<!\w)(?:[Kk]m\s?\d{1,4}\s?\+\s?\d{1,3}|Km\s?\d{1,4})(?![\d,.]\d)"),
    ("road", r"(?<!\w)(?:" + _alt(ROADS) + r")\s?\.?\s?[1-9]\d{0,3}[A-Z]?(?!\w|[,.]\d|\s\d)"),
    ("alarm", r"(?<!\w)BĐ\s?(?:[1-3]|III|II|I)(?!\w)"),
    ("drange", r"(?<![\w/])\d{1,2}\s?[-–]\s?\d{1,2}/\d{1,2}(?:/\d{4})?(?![\w/])"),
    ("date", r"(?<![\w/.])\d{1,2}(?P<dsep>[/.-])\d{1,2}(?P=dsep)\d{4}(?!\w)"),
    ("slash", r"(?<![\w/])(?:" + _GROUPED + r"|\d{1,3})/(?:" + _GROUPED + r"|\d{1,4})(?:\s?(?:" + _UNIT + r"))?"
              r"(?![\w/]|[.,]\d)"),
    ("time", r"(?<![\w:])\d{1,2}(?:[hH]\d{0,2}|[gG]\d{2}|:\d{2})(?:'|p|ph)?(?![\w:])"),
    ("ratio", r"(?<![\w:])\d+:\d+(?![\w:])"),
    ("money", SIGN + r"(?:" + NUM + r")\s?(?:" + _MONEY + r")(?:\s?/\s?(?:" + _UNIT + r"|" + WORD + r"))?(?!\w)"),
    ("unit", SIGN + r"(?:" + NUM + r")\s?(?:" + _UNIT + r")(?:\s?/\s?(?:" + _UNIT + r"|" + WORD + r"))?(?!\w)"),
    ("ordinal", r"(?<!\w)(?:[Tt]hứ|[Tt]háng)\s+\d{1,2}(?![\w/:]|[.,]\d)"),
    ("num", SIGN + r"(?:" + NUM + r")"),
    ("per", r"(?<=\w)/(?:" + _UNIT + r"|" + WORD + r")(?!\w)"),
    ("roman", r"(?<![\w.])[IVXLC]+(?!\w|\.\w)"),
    ("abbr", r"(?<![\w.])(?:" + _alt(ABBREVIATIONS) + r")(?![\w&-])"),
    ("sym", r"\s*&\s*|~(?=\s?\d)"),
]


@lru_cache(maxsize=8)
def scanner(lexicon_keys: tuple[str, ...]) -> re.Pattern[str]:
    """The master pattern, with an official's lexicon first (it wins over every built-in reading)."""
    parts = []
    if lexicon_keys:
        parts.append(r"(?P<lex>(?<![\w.])(?:" + _alt(lexicon_keys) + r")(?!\w))")
    parts += [f"(?P<{name}>{rx})" for name, rx in SHAPES]
    return re.compile("|".join(parts))
