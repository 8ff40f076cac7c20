"""The classifier: each written form the scanner found is read by its class, decided from the words around it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from drivers.broadcast.vi_numbers import (
    NORTH,
    Style,
    day_words,
    decimal_words,
    digits_words,
    grouped_digits,
    month_words,
    number_words,
    ordinal_tail,
    roman_value,
)
from drivers.broadcast.vi_tables import (
    ABBREVIATIONS,
    DATE_BEFORE,
    DIGITS_AFTER,
    DOC_CODES,
    FRACTION_AFTER,
    FRACTION_BEFORE,
    MONEY,
    PER_BEFORE,
    PER_UNITS,
    RATIO_BEFORE,
    ROADS,
    ROMAN_AFTER,
    SCORE_BEFORE,
    UNITS,
)
from drivers.broadcast.vi_tokens import NUM, scanner


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of the notice: as written, as it will be spoken, and its class (None: read as written)."""

    written: str
    spoken: str
    cls: str | None


_WORDS = re.compile(r"[^\W_]+")
_AFTER_STOP = re.compile(r"[,.;:!?()\[\]\"]")
_NUMBER_PART = re.compile(r"([-−+]?)(" + NUM + r")\s?")
_UNIT_KEYS = sorted([*UNITS, *MONEY], key=len, reverse=True)
_RANGEABLE = frozenset(("num", "unit", "money", "date", "time", "fraction", "chain"))
_DASH = re.compile(r"\s*[-–—]\s*")


class Ctx:
    """The words just before and just after one written form, lower-cased; a sentence mark ends them."""

    __slots__ = ("before", "after")

    def __init__(self, text: str, start: int, end: int) -> None:
        head = re.split(r"[.;!?]\s", text[max(0, start - 48):start])[-1]
        self.before = " ".join(_WORDS.findall(head.lower())[-4:])
        tail = _AFTER_STOP.split(text[end:end + 48], 1)[0]
        self.after = " ".join(_WORDS.findall(tail.lower())[:3])

    def prev(self, phrases: object) -> bool:
        b = self.before
        return any(b == p or b.endswith(" " + p) for p in phrases)  # type: ignore[attr-defined]

    def near(self, phrases: object) -> bool:
        """One of the phrases among the last few words ("tỷ số chung cuộc 4:2")."""
        b = " " + self.before + " "
        return any(f" {p} " in b for p in phrases)  # type: ignore[attr-defined]

    def last(self) -> str:
        return self.before.rsplit(" ", 1)[-1]

    def next(self, phrases: object) -> bool:
        a = self.after
        return any(a == p or a.startswith(p + " ") for p in phrases)  # type: ignore[attr-defined]


Reading = tuple[str, str] | None


class Reader:
    """Reads a notice aloud in one region's style, an official's lexicon first."""

    def __init__(self, style: Style = NORTH, lexicon: Mapping[str, str] | None = None) -> None:
        self.style = style
        self.lexicon = dict(lexicon or {})
        self._scan = scanner(tuple(sorted(self.lexicon)))
        self._read: dict[str, Callable[[str, Ctx], Reading]] = {
            "lex": lambda s, c: ("lexicon", self.lexicon[s]), "doc": self._doc, "phone": self._phone,
            "chain": self._chain, "road": self._road, "alarm": self._alarm, "drange": self._drange,
            "date": self._date, "slash": self._slash, "time": self._time, "ratio": self._ratio,
            "money": self._money, "unit": self._unit, "ordinal": self._ordinal, "num": self._num, "per": self._per,
            "roman": self._roman, "abbr": lambda s, c: ("abbr", ABBREVIATIONS[s]),
            "sym": lambda s, c: ("sym", "và" if "&" in s else "khoảng"),
        }

    def n(self, v: int) -> str:
        return number_words(v, self.style)

    def pieces(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        pos = 0
        for m in self._scan.finditer(text):
            kind = m.lastgroup or ""
            s = m.group(kind)
            if m.start() > pos:
                out.append(Piece(text[pos:m.start()], text[pos:m.start()], None))
            got = self._read[kind](s, Ctx(text, m.start(), m.end()))
            out.append(Piece(s, got[1], got[0]) if got else self._fallback(s))
            pos = m.end()
        if pos < len(text):
            out.append(Piece(text[pos:], text[pos:], None))
        return self._ranges(text, out)

    def _fallback(self, s: str) -> Piece:
        """A form that fits no reading (a 45th of a month): its numbers are still read, the rest as written."""
        spoken = re.sub(NUM, lambda m: f" {decimal_words(m.group(0), self.style)} ", s)
        return Piece(s, spoken, "num") if spoken != s else Piece(s, s, None)

    def _ranges(self, text: str, pieces: list[Piece]) -> list[Piece]:
        """A dash between two quantities, dates or times is "đến" (a score's is a pause); "7-11h" is two times."""
        for i in range(1, len(pieces) - 1):
            a, gap, b = pieces[i - 1], pieces[i], pieces[i + 1]
            if gap.cls or a.cls not in _RANGEABLE or b.cls not in _RANGEABLE or not _DASH.fullmatch(gap.written):
                continue
            before = " ".join(_WORDS.findall("".join(p.written for p in pieces[max(0, i - 4):i - 1]).lower())[-4:])
            if any(f" {p} " in f" {before} " for p in SCORE_BEFORE):
                pieces[i] = Piece(gap.written, " ", "score")
                continue
            pieces[i] = Piece(gap.written, " đến ", "range")
            if b.cls == "time" and a.cls == "num" and a.written.isdigit() and int(a.written) <= 24:
                pieces[i - 1] = Piece(a.written, f"{a.spoken} giờ", "time")
        return pieces

    # --- one reading per class -------------------------------------------------------------------------------
    def _code(self, part: str) -> str:
        m = re.fullmatch(r"([A-Za-zĐđ]+)(\d*)", part)
        if not m:
            return part
        letters = DOC_CODES.get(m.group(1), ABBREVIATIONS.get(m.group(1), m.group(1)))
        return letters + (" " + self.n(int(m.group(2))) if m.group(2) else "")

    def _doc(self, s: str, c: Ctx) -> Reading:
        """ "27/KH-UBND" → "hai mươi bảy kế hoạch Ủy ban nhân dân": the slash and the hyphen are not spoken."""
        num, rest = s.split("/", 1)
        words = [self.n(int(num))]
        if re.match(r"\d{4}/", rest):
            words.append("năm " + self.n(int(rest[:4])))
            rest = rest[5:]
        words += [self._code(p) for p in re.split(r"[-–]", rest) if p]
        return "doc", " ".join(words)

    def _phone(self, s: str, c: Ctx) -> Reading:
        digits = sum(ch.isdigit() for ch in s)
        if s.startswith("+84"):
            return ("phone", "cộng tám tư, " + grouped_digits(s[3:])) if 11 <= digits <= 12 else None
        if s.startswith("0"):
            return ("phone", grouped_digits(s)) if 9 <= digits <= 12 else None
        return ("phone", grouped_digits(s)) if digits in (8, 10) else None

    def _chain(self, s: str, c: Ctx) -> Reading:
        km, *m = (int(x) for x in re.findall(r"\d+", s))
        return "chain", f"ki lô mét {self.n(km)}" + (f" cộng {self.n(m[0])}" if m and m[0] else "")

    def _road(self, s: str, c: Ctx) -> Reading:
        m = re.fullmatch(r"(\D+?)\s?\.?\s?(\d+)([A-Z]?)", s)
        if not m:
            return None
        return "road", f"{ROADS[m.group(1)]} {self.n(int(m.group(2)))}" + (f" {m.group(3)}" if m.group(3) else "")

    def _alarm(self, s: str, c: Ctx) -> Reading:
        level = s[2:].strip()
        return "alarm", "báo động " + self.n(int(level) if level.isdigit() else len(level))

    def _day_prefix(self, c: Ctx) -> str:
        return "" if c.last() in ("ngày", "mùng", "mồng") else "ngày "

    def _day(self, d: int, c: Ctx) -> str:
        return self.n(d) if c.last() in ("mùng", "mồng") else day_words(d, self.style)

    def _drange(self, s: str, c: Ctx) -> Reading:
        d1, d2, mo, *y = (int(x) for x in re.findall(r"\d+", s))
        if not (1 <= d1 < d2 <= 31 and 1 <= mo <= 12):
            return None
        year = f" năm {self.n(y[0])}" if y else ""
        return "date", (f"{self._day_prefix(c)}{self._day(d1, c)} đến {day_words(d2, self.style)} "
                        f"tháng {month_words(mo, self.style)}{year}")

    def _date(self, s: str, c: Ctx) -> Reading:
        d, mo, y = (int(x) for x in re.findall(r"\d+", s))
        if not (1 <= d <= 31 and 1 <= mo <= 12):
            return None
        return "date", f"{self._day_prefix(c)}{self._day(d, c)} tháng {month_words(mo, self.style)} năm {self.n(y)}"

    def _fraction(self, a: int, b: int) -> str:
        """A simple fraction is "ba phần tư"; a count out of a total ("12/15 hộ", "24/24") is "mười hai trên"."""
        if a < b <= 10:
            return f"{self.n(a)} phần {'tư' if b == 4 else self.n(b)}"
        return f"{self.n(a)} trên {self.n(b)}"

    def _slash(self, s: str, c: Ctx) -> Reading:
        """ "a/b": a date, a month of a year, a fraction or a score, by the words around it."""
        m = re.fullmatch(r"([\d.]+)/([\d.]+)\s?(.*)", s)
        assert m is not None
        a, b, unit = int(m.group(1).replace(".", "")), int(m.group(2).replace(".", "")), m.group(3)
        if unit:
            return "fraction", f"{self._fraction(a, b)} {UNITS[unit]}"
        date_ok = 1 <= a <= 31 and 1 <= b <= 12 and len(m.group(1)) <= 2 and len(m.group(2)) <= 2
        if c.last() in ("ngày", "mùng", "mồng") and date_ok:
            return "date", f"{self._day_prefix(c)}{self._day(a, c)} tháng {month_words(b, self.style)}"
        if c.near(SCORE_BEFORE):
            return "score", f"{self.n(a)} {self.n(b)}"
        if len(m.group(2)) == 4 and c.last() == "quý" and 1 <= a <= 4:
            return "date", f"{self.n(a)} năm {self.n(b)}"
        if len(m.group(2)) == 4 and 1 <= a <= 12:
            head = "" if c.last() == "tháng" else "tháng "
            return "date", f"{head}{month_words(a, self.style)} năm {self.n(b)}"
        if date_ok and (c.last() in DATE_BEFORE or not (c.last() in FRACTION_BEFORE or c.next(FRACTION_AFTER)
                                                         or c.prev(RATIO_BEFORE))):
            return "date", f"{self._day_prefix(c)}{self._day(a, c)} tháng {month_words(b, self.style)}"
        return "fraction", self._fraction(a, b)

    def _time(self, s: str, c: Ctx) -> Reading:
        h, mi = re.match(r"(\d+)\D*(\d*)", s).groups()  # type: ignore[union-attr]
        hour, minute = int(h), int(mi or 0)
        if ":" in s and (c.near(SCORE_BEFORE) or c.near(RATIO_BEFORE)):
            return self._ratio(s, c)
        if hour > 24 or minute > 59:
            return None
        return "time", f"{self.n(hour)} giờ" + (f" {self.n(minute)} phút" if minute else "")

    def _ratio(self, s: str, c: Ctx) -> Reading:
        a, b = (int(x) for x in s.split(":"))
        if c.near(SCORE_BEFORE):
            return "score", f"{self.n(a)} {self.n(b)}"
        return "ratio", f"{self.n(a)} trên {self.n(b)}"

    def _amount(self, s: str) -> tuple[str, str, str | None]:
        m = _NUMBER_PART.match(s)
        assert m is not None
        rest = s[m.end():]
        unit = next(u for u in _UNIT_KEYS if rest.startswith(u))
        sign = {"-": "âm ", "−": "âm ", "+": "cộng "}.get(m.group(1), "")
        return sign + decimal_words(m.group(2), self.style), unit, rest[len(unit):].strip(" /") or None

    def _money(self, s: str, c: Ctx) -> Reading:
        amount, _, per = self._amount(s)
        return "money", f"{amount} đồng" + (f" một {self._per_unit(per)}" if per else "")

    def _unit(self, s: str, c: Ctx) -> Reading:
        amount, unit, per = self._amount(s)
        return "unit", f"{amount} {UNITS[unit]}" + (f" một {self._per_unit(per)}" if per else "")

    @staticmethod
    def _per_unit(unit: str) -> str:
        return UNITS.get(unit) or PER_UNITS.get(unit) or unit

    def _ordinal(self, s: str, c: Ctx) -> Reading:
        word, num = s.split()
        n = int(num)
        return "ordinal", f"{word} {'nhất' if n == 1 and word.lower() == 'thứ' else ordinal_tail(n, self.style)}"

    def _num(self, s: str, c: Ctx) -> Reading:
        sign = {"-": "âm ", "−": "âm ", "+": "cộng "}.get(s[0], "")
        body = s[1:] if sign else s
        if body.isdigit() and (c.prev(DIGITS_AFTER) or (body[0] == "0" and len(body) > 1)):
            return "digits", sign + digits_words(body)
        return "num", sign + decimal_words(body, self.style)

    def _per(self, s: str, c: Ctx) -> Reading:
        if c.last() not in PER_BEFORE:
            return None
        unit = s.strip(" /")
        return "unit", "một " + self._per_unit(unit)

    def _roman(self, s: str, c: Ctx) -> Reading:
        v = roman_value(s)
        if v is None or not c.prev(ROMAN_AFTER):
            return None
        if c.last() == "thứ":
            return "roman", "nhất" if v == 1 else ordinal_tail(v, self.style)
        return "roman", self.n(v)
