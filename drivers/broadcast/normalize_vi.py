"""Vietnamese text normalisation before speech: numbers, dates, times, phones, money, units, abbreviations."""

from __future__ import annotations

import re
import unicodedata

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_SCALES = ("", "nghìn", "triệu", "tỷ")

# Whole words only, case-sensitive: these are how commune notices write them.
ABBREVIATIONS: dict[str, str] = {
    "UBND": "Ủy ban nhân dân",
    "HĐND": "Hội đồng nhân dân",
    "MTTQ": "Mặt trận Tổ quốc",
    "TKCN": "tìm kiếm cứu nạn",
    "PCTT": "phòng chống thiên tai",
    "PCCC": "phòng cháy chữa cháy",
    "BCH": "Ban Chỉ huy",
    "BCĐ": "Ban Chỉ đạo",
    "THCS": "trung học cơ sở",
    "THPT": "trung học phổ thông",
    "BHYT": "bảo hiểm y tế",
    "BHXH": "bảo hiểm xã hội",
    "CCCD": "căn cước công dân",
    "HTX": "hợp tác xã",
    "CSGT": "cảnh sát giao thông",
    "KT-XH": "kinh tế xã hội",
    "ATGT": "an toàn giao thông",
    "SĐT": "số điện thoại",
    "ĐT": "điện thoại",
    "TP.HCM": "thành phố Hồ Chí Minh",
    "TPHCM": "thành phố Hồ Chí Minh",
    "TP": "thành phố",
    "TX": "thị xã",
    "TT": "thị trấn",
    "CN": "chủ nhật",
}
UNITS: dict[str, str] = {
    "km/h": "ki lô mét một giờ",
    "mm": "mi li mét",
    "cm": "xen ti mét",
    "km": "ki lô mét",
    "kg": "ki lô gam",
    "ha": "héc ta",
    "m2": "mét vuông",
    "m3": "mét khối",
    "m": "mét",
    "°C": "độ C",
    "tấn": "tấn",
}
_NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[,.]\d+)?"
_GROUPED = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")


def _under_1000(n: int, full: bool) -> list[str]:
    """Read 0..999; `full` reads a zero hundreds digit ("không trăm") as in 2026 → hai nghìn không trăm..."""
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units:
            words += (["linh"] if words else []) + [DIGITS[units]]
    elif tens == 1:
        words.append("mười")
        if units:
            words.append("lăm" if units == 5 else DIGITS[units])
    else:
        words += [DIGITS[tens], "mươi"]
        if units:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(units, DIGITS[units]))
    return words


def number_words(n: int) -> str:
    """An integer in words; past a thousand billion it is read digit by digit."""
    if n < 0:
        return "âm " + number_words(-n)
    if n == 0:
        return "không"
    if n >= 10**12:
        return digits_words(str(n))
    groups: list[int] = []
    while n:
        n, g = divmod(n, 1000)
        groups.append(g)
    words: list[str] = []
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if g == 0:
            continue
        words += _under_1000(g, full=bool(words))
        if _SCALES[i]:
            words.append(_SCALES[i])
    return " ".join(words)


def digits_words(s: str) -> str:
    return " ".join(DIGITS[int(c)] for c in s if c.isdigit())


def decimal_words(token: str) -> str:
    """`1.250.000` (dot = thousands) or `96,5` (comma = decimal; a lone dot too) in words."""
    if _GROUPED.fullmatch(token):
        whole, _, frac = token.partition(",")
        whole = whole.replace(".", "")
    else:
        whole, _, frac = token.replace(".", ",").partition(",")
    if len(whole) > 15:
        return digits_words(whole)
    out = number_words(int(whole))
    if frac:
        frac_words = digits_words(frac) if frac.startswith("0") or len(frac) > 3 else number_words(int(frac))
        out += " phẩy " + frac_words
    return out


def _day_words(d: int) -> str:
    return ("mùng " if d <= 10 else "") + number_words(d)


def _month_words(m: int) -> str:
    return "tư" if m == 4 else number_words(m)


def _phone(m: re.Match[str]) -> str:
    text = m.group(0)
    prefix = ""
    if text.startswith("+84"):
        prefix, text = "cộng tám tư, ", text[3:]
    return prefix + ", ".join(digits_words(g) for g in re.split(r"[ .-]", text) if g)


def _date_dmy(m: re.Match[str]) -> str:
    d, mo, y = int(m.group(2)), int(m.group(3)), int(m.group(4))
    if not (1 <= d <= 31 and 1 <= mo <= 12):
        return m.group(0)
    prefix = m.group(1) or "ngày "
    return f"{prefix}{_day_words(d)} tháng {_month_words(mo)} năm {number_words(y)}"


def _date_dm(m: re.Match[str]) -> str:
    d, mo = int(m.group(2)), int(m.group(3))
    if not (1 <= d <= 31 and 1 <= mo <= 12):
        return m.group(0)
    prefix = m.group(1) or "ngày "
    return f"{prefix}{_day_words(d)} tháng {_month_words(mo)}"


def _month_year(m: re.Match[str]) -> str:
    mo, y = int(m.group(1)), int(m.group(2))
    if not 1 <= mo <= 12:
        return m.group(0)
    return f"tháng {_month_words(mo)} năm {number_words(y)}"


def _clock(m: re.Match[str]) -> str:
    h, mi = int(m.group(1)), int(m.group(2) or 0) if m.re.groups > 1 else 0
    if h > 24 or mi > 59:
        return m.group(0)
    return f"{number_words(h)} giờ" + (f" {number_words(mi)} phút" if mi else "")


def _ordinal(m: re.Match[str]) -> str:
    word, n = m.group(1), int(m.group(2))
    if word.lower() == "thứ" and n == 1:
        return f"{word} nhất"
    return f"{word} {'tư' if n == 4 else number_words(n)}"


_ABBR_RE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w])"
)
_UNIT_RE = re.compile(
    r"(" + _NUM + r")\s?(" + "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True)) + r")(?![\w/])"
)
_RULES: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"(?<![\d.,/])(?:\+84[ .-]?|0)\d{2,4}(?:[ .-]?\d{2,4}){1,3}(?![\d/]|,\d)"),
     lambda m: _phone(m) if 9 <= sum(c.isdigit() for c in m.group(0)) <= 12 else m.group(0)),
    (re.compile(r"(ngày\s+)?\b(\d{1,2})/(\d{1,2})/(\d{4})\b", re.I), _date_dmy),
    (re.compile(r"\btháng\s+(\d{1,2})/(\d{4})\b", re.I), _month_year),
    (re.compile(r"(ngày\s+)?\b(\d{1,2})/(\d{1,2})\b(?!/)", re.I), _date_dm),
    (re.compile(r"\b(\d{1,2})\s?[hg:](\d{2})\b"), _clock),
    (re.compile(r"\b(\d{1,2})h\b"), _clock),
    (re.compile(r"(" + _NUM + r")\s?%"), lambda m: decimal_words(m.group(1)) + " phần trăm"),
    (re.compile(r"(" + _NUM + r")\s?(?:đồng|đ|VNĐ|VND)(?!\w)"), lambda m: decimal_words(m.group(1)) + " đồng"),
    (re.compile(r"(" + _NUM + r")\s?[-–]\s?(?=" + _NUM + r")"), lambda m: decimal_words(m.group(1)) + " đến "),
    (_UNIT_RE, lambda m: decimal_words(m.group(1)) + " " + UNITS[m.group(2)]),
    (re.compile(r"\b(thứ|tháng)\s+(\d{1,2})\b", re.I), _ordinal),
    (re.compile(_NUM), lambda m: " " + decimal_words(m.group(0)) + " "),
    (re.compile(r"\s*&\s*"), lambda m: " và "),
]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")


def clean(text: str) -> str:
    """NFC, no control characters, single spaces; keeps punctuation that gives speech its pauses."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def normalize(text: str) -> str:
    """Spoken form of a written notice: what a reader would say aloud."""
    text = clean(text)
    text = _ABBR_RE.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)  # type: ignore[arg-type]
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
