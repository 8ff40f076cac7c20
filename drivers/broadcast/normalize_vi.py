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
# Document type and issuer codes in a document number ("số 123/QĐ-UBND"), read as words.
DOC_CODES: dict[str, str] = {
    "QĐ": "quyết định", "NQ": "nghị quyết", "NĐ": "nghị định", "CT": "chỉ thị", "TB": "thông báo",
    "KH": "kế hoạch", "BC": "báo cáo", "CV": "công văn", "TTr": "tờ trình", "TT": "thông tư", "HD": "hướng dẫn",
    "GM": "giấy mời", "UBND": "Ủy ban nhân dân", "HĐND": "Hội đồng nhân dân", "CP": "Chính phủ",
    "TTg": "Thủ tướng", "VP": "văn phòng", "BCĐ": "Ban Chỉ đạo", "BCH": "Ban Chỉ huy", "MTTQ": "Mặt trận Tổ quốc",
    "BTC": "Bộ Tài chính", "BNN": "Bộ Nông nghiệp", "PTNT": "phát triển nông thôn", "TNMT": "tài nguyên môi trường",
}
# Words after which "3/4" is a quantity, not the 3rd of April.
_FRACTION_BEFORE = ("đạt", "khoảng", "gần", "hơn", "trên", "dưới", "chiếm", "bằng", "còn", "được", "tới", "đến")
_FRACTION_AFTER = ("số", "diện tích", "kế hoạch", "chỉ tiêu", "dân số", "tổng", "lượng", "sản lượng")
_SCORE_BEFORE = ("tỷ số", "tỉ số", "thắng", "thua", "hòa")
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


def _clock_range(m: re.Match[str]) -> str:
    """ "7h-11h", "7h30-11h", "7-11h", "7:00-11:00": two clock times, read "... giờ đến ... giờ"."""
    h1, m1, h2, m2 = int(m.group(1)), int(m.group(2) or 0), int(m.group(3)), int(m.group(4) or 0)
    if max(h1, h2) > 24 or max(m1, m2) > 59:
        return m.group(0)

    def one(h: int, mi: int) -> str:
        return f"{number_words(h)} giờ" + (f" {number_words(mi)} phút" if mi else "")

    return f"{one(h1, m1)} đến {one(h2, m2)}"


def _per_unit_price(m: re.Match[str]) -> str:
    unit = m.group(2)
    return f"{decimal_words(m.group(1))} đồng một {UNITS.get(unit, unit)}"


def _doc_number(m: re.Match[str]) -> str:
    """ "số 123/QĐ-UBND" → "số một trăm hai mươi ba trên quyết định Ủy ban nhân dân"."""
    parts = [number_words(int(m.group(2)))]
    if m.group(3):
        parts.append(number_words(int(m.group(3))))
    codes = [DOC_CODES.get(c, ABBREVIATIONS.get(c, c)) for c in m.group(4).split("-") if c]
    parts.append(" ".join(codes))
    return m.group(1) + " trên ".join(parts)


def _slash_pair(m: re.Match[str]) -> str:
    """A score after "tỷ số", a fraction after a quantity word or before "số"/"kế hoạch"; else left for dates."""
    before, a, b = m.group(1) or "", int(m.group(2)), int(m.group(3))
    after = m.string[m.end():].lstrip().lower()
    low = before.lower().strip()
    if any(low.endswith(w) for w in _SCORE_BEFORE):
        return f"{before}{number_words(a)} {number_words(b)}"
    is_fraction = (any(low.endswith(w) for w in _FRACTION_BEFORE) or any(after.startswith(w + " ") or after == w
                   for w in _FRACTION_AFTER) or a > 31 or b > 12 or b == 0)
    if not is_fraction:
        return m.group(0)
    return f"{before}{number_words(a)} phần {'tư' if b == 4 else number_words(b)}"


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
_DOC_RE = re.compile(r"(số\s+)(\d{1,6})(?:/(\d{4}))?/((?:[A-ZĐ][A-Za-zĐđ]*)(?:-[A-ZĐ][A-Za-zĐđ]*)*)(?![\w-])",
                     re.I)
_RULES: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"(?<![\d.,/])(?:\+84[ .-]?|0)\d{2,4}(?:[ .-]?\d{2,4}){1,3}(?![\d/]|,\d)"),
     lambda m: _phone(m) if 9 <= sum(c.isdigit() for c in m.group(0)) <= 12 else m.group(0)),
    (re.compile(r"(ngày\s+)?\b(\d{1,2})/(\d{1,2})/(\d{4})\b", re.I), _date_dmy),
    (re.compile(r"((?:\b\w+\s+)?\w+\s+)?(?<![\d/])(\d{1,3})/(\d{1,3})\b(?!/)"), _slash_pair),
    (re.compile(r"\btháng\s+(\d{1,2})/(\d{4})\b", re.I), _month_year),
    (re.compile(r"(ngày\s+)?\b(\d{1,2})/(\d{1,2})\b(?!/)", re.I), _date_dm),
    (re.compile(r"\b(\d{1,2})(?:[hg:](\d{2})?)?\s?[-–]\s?(\d{1,2})[hg:](\d{2})?\b"), _clock_range),
    (re.compile(r"\b(\d{1,2})\s?[hg:](\d{2})\b"), _clock),
    (re.compile(r"\b(\d{1,2})h\b"), _clock),
    (re.compile(r"(" + _NUM + r")\s?%"), lambda m: decimal_words(m.group(1)) + " phần trăm"),
    (re.compile(r"(" + _NUM + r")\s?(?:đồng|đ|VNĐ|VND)\s?/\s?(" + "|".join(
        re.escape(u) for u in sorted(UNITS, key=len, reverse=True)) + r"|[^\W\d]+)(?!\w)"), _per_unit_price),
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
    text = _DOC_RE.sub(_doc_number, text)
    text = _ABBR_RE.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)  # type: ignore[arg-type]
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
