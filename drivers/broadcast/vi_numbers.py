"""Numbers in Vietnamese words, with the regional variants an announcer uses (linh/lẻ, nghìn/ngàn, mùng)."""

from __future__ import annotations

from dataclasses import dataclass

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


@dataclass(frozen=True)
class Style:
    """How a region reads numbers: the zero tens word, the thousands word, and "mùng" before days 1-10."""

    zero_tens: str = "linh"
    thousand: str = "nghìn"
    mung: bool = True


NORTH = Style()
SOUTH = Style(zero_tens="lẻ", thousand="ngàn", mung=False)
STYLES = {"north": NORTH, "south": SOUTH}


def _under_1000(n: int, full: bool, style: Style) -> list[str]:
    """0..999; `full` reads a zero hundreds digit ("không trăm") inside a bigger number."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            words += ([style.zero_tens] if words else []) + [DIGITS[units]]
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else DIGITS[units])
    else:
        words += [DIGITS[tens], "mươi"]
        if units:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(units, DIGITS[units]))
    return words


def number_words(n: int, style: Style = NORTH) -> str:
    """An integer in words; past a thousand billion it is read digit by digit."""
    if n < 0:
        return "âm " + number_words(-n, style)
    if n == 0:
        return "không"
    if n >= 10**12:
        return digits_words(str(n))
    scales = ("", style.thousand, "triệu", "tỷ")
    groups: list[int] = []
    while n:
        n, g = divmod(n, 1000)
        groups.append(g)
    words: list[str] = []
    for i in range(len(groups) - 1, -1, -1):
        if groups[i]:
            words += _under_1000(groups[i], bool(words), style)
            if scales[i]:
                words.append(scales[i])
    return " ".join(words)


def digits_words(s: str) -> str:
    """Digit by digit, as phone numbers and codes are read."""
    return " ".join(DIGITS[int(c)] for c in s if c.isdigit())


def grouped_digits(s: str, seps: str = " .-") -> str:
    """Digit groups as written ("0912 345 678"), a short pause between groups."""
    groups, cur = [], ""
    for ch in s:
        if ch in seps:
            if cur:
                groups.append(cur)
            cur = ""
        elif ch.isdigit():
            cur += ch
    if cur:
        groups.append(cur)
    return ", ".join(digits_words(g) for g in groups)


def decimal_words(token: str, style: Style = NORTH) -> str:
    """`1.250.000` (dot = thousands) or `96,5` (comma = decimal; a lone dot with other than 3 digits too)."""
    if "." in token and "," not in token and all(len(p) == 3 for p in token.split(".")[1:]) and token[0] != "0":
        whole, frac = token.replace(".", ""), ""
    elif "," in token:
        whole, _, frac = token.partition(",")
        whole = whole.replace(".", "")
    else:
        whole, _, frac = token.partition(".")
    if len(whole) > 15:
        return digits_words(whole)
    out = number_words(int(whole), style)
    if frac:
        frac_words = digits_words(frac) if frac.startswith("0") or len(frac) > 3 else number_words(int(frac), style)
        out += " phẩy " + frac_words
    return out


def ordinal_tail(n: int, style: Style = NORTH) -> str:
    """The number after "thứ"/"tháng": 4 is "tư"; after "thứ", 1 is "nhất"."""
    return "tư" if n == 4 else number_words(n, style)


def day_words(d: int, style: Style = NORTH) -> str:
    return ("mùng " if style.mung and d <= 10 else "") + number_words(d, style)


def month_words(m: int, style: Style = NORTH) -> str:
    return "tư" if m == 4 else number_words(m, style)


def roman_value(s: str) -> int | None:
    """A Roman numeral as notices write them (I..CC); None when it is not one."""
    if not s or any(c not in ROMAN for c in s):
        return None
    total = 0
    for i, c in enumerate(s):
        v = ROMAN[c]
        total += -v if i + 1 < len(s) and ROMAN[s[i + 1]] > v else v
    return total if 0 < total <= 200 and to_roman(total) == s else None


def to_roman(n: int) -> str:
    out = ""
    for v, sym in ((100, "C"), (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"),
                   (1, "I")):
        while n >= v:
            out, n = out + sym, n - v
    return out
