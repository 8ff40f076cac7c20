"""Vietnamese text normalisation before speech: the public face of the scanner (vi_tokens) and reader (vi_read).

Numbers, dates, times, ranges, fractions/ratios/scores, money and units, phones and hotlines, document numbers,
road codes, flood alarm levels, abbreviations, Roman numerals and signs, each read by its class; an official's
lexicon is applied first, so both speech engines say the same words.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Mapping

from drivers.broadcast.vi_numbers import STYLES, decimal_words, digits_words, number_words
from drivers.broadcast.vi_read import Piece, Reader
from drivers.broadcast.vi_tables import ABBREVIATIONS, DOC_CODES, UNITS

__all__ = ["ABBREVIATIONS", "DOC_CODES", "UNITS", "Piece", "clean", "decimal_words", "digits_words", "normalize",
           "number_words", "pieces", "tidy"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")


def clean(text: str) -> str:
    """NFC, no control characters, single spaces; keeps punctuation that gives speech its pauses."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=16)
def _reader(region: str, lexicon: tuple[tuple[str, str], ...]) -> Reader:
    return Reader(STYLES.get(region, STYLES["north"]), dict(lexicon))


def pieces(text: str, lexicon: Mapping[str, str] | None = None, region: str = "north") -> list[Piece]:
    """The notice cut into stretches read as written and stretches rewritten (with their class)."""
    lex = tuple(sorted((k, v) for k, v in (lexicon or {}).items() if k))
    return _reader(region, lex).pieces(clean(text))


def tidy(spoken: list[str]) -> str:
    """Joins spoken stretches: a space between words that met, none before a pause mark."""
    out = ""
    for s in spoken:
        if out and s and out[-1].isalnum() and s[0].isalnum():
            out += " "
        out += s
    out = re.sub(r"\s+", " ", out)
    return re.sub(r"\s+([.,;:!?)])", r"\1", out).strip()


def normalize(text: str, lexicon: Mapping[str, str] | None = None, region: str = "north") -> str:
    """Spoken form of a written notice: what a commune announcer would say aloud."""
    return tidy([p.spoken for p in pieces(text, lexicon, region)])
