"""Vietnamese text normalisation: what a reader would say aloud."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.broadcast.normalize_vi import normalize, number_words

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "bulletins-vi.txt"


@pytest.mark.parametrize("n, words", [
    (0, "không"), (5, "năm"), (10, "mười"), (15, "mười lăm"), (21, "hai mươi mốt"), (24, "hai mươi tư"),
    (25, "hai mươi lăm"), (105, "một trăm linh năm"), (110, "một trăm mười"), (1005, "một nghìn không trăm linh năm"),
    (2026, "hai nghìn không trăm hai mươi sáu"), (1_250_000, "một triệu hai trăm năm mươi nghìn"),
    (3_000_000_000, "ba tỷ"),
])
def test_numbers(n: int, words: str) -> None:
    assert number_words(n) == words


@pytest.mark.parametrize("text, spoken", [
    ("ngày 25/11/2026", "ngày hai mươi lăm tháng mười một năm hai nghìn không trăm hai mươi sáu"),
    ("vào 03/12 và 04/12", "vào ngày mùng ba tháng mười hai và ngày mùng bốn tháng mười hai"),
    ("tháng 12/2026", "tháng mười hai năm hai nghìn không trăm hai mươi sáu"),
    ("từ 7h00 đến 11h00", "từ bảy giờ đến mười một giờ"),
    ("lúc 19h30", "lúc mười chín giờ ba mươi phút"),
    ("lúc 7:05", "lúc bảy giờ năm phút"),
    ("gọi 0912 345 678.", "gọi không chín một hai, ba bốn năm, sáu bảy tám."),
    ("số 0238 3851 234", "số không hai ba tám, ba tám năm một, hai ba bốn"),
    ("mức thu 1.250.000 đồng", "mức thu một triệu hai trăm năm mươi nghìn đồng"),
    ("phí 50.000đ", "phí năm mươi nghìn đồng"),
    ("đạt 96,5%", "đạt chín mươi sáu phẩy năm phần trăm"),
    ("mưa 150-200 mm", "mưa một trăm năm mươi đến hai trăm mi li mét"),
    ("gió 60 km/h", "gió sáu mươi ki lô mét một giờ"),
    ("UBND xã, HĐND xã, TP Vinh", "Ủy ban nhân dân xã, Hội đồng nhân dân xã, thành phố Vinh"),
    ("Ban Chỉ huy PCTT và TKCN", "Ban Chỉ huy phòng chống thiên tai và tìm kiếm cứu nạn"),
    ("thứ 4 tháng 4", "thứ tư tháng tư"),
    ("bão số 7, cấp 12", "bão số bảy, cấp mười hai"),
    # time ranges
    ("họp từ 7h-11h sáng", "họp từ bảy giờ đến mười một giờ sáng"),
    ("từ 7h30-11h", "từ bảy giờ ba mươi phút đến mười một giờ"),
    ("từ 7-11h", "từ bảy giờ đến mười một giờ"),
    ("từ 13:30 – 17:00", "từ mười ba giờ ba mươi phút đến mười bảy giờ"),
    # prices per unit
    ("giá lợn hơi 7.500đ/kg", "giá lợn hơi bảy nghìn năm trăm đồng một ki lô gam"),
    ("gà giống 45.000 đồng/con", "gà giống bốn mươi lăm nghìn đồng một con"),
    ("thuê 2.000.000 VNĐ / tháng", "thuê hai triệu đồng một tháng"),
    # fractions and scores with a slash (not dates)
    ("đạt 3/4 kế hoạch", "đạt ba phần tư kế hoạch"),
    ("1/2 số hộ", "một phần hai số hộ"),
    ("khoảng 2/3 diện tích", "khoảng hai phần ba diện tích"),
    ("hết 15/20 hộ", "hết mười lăm trên hai mươi hộ"),
    ("tỷ số 2/1", "tỷ số hai một"),
    ("đội xã thắng 3/0", "đội xã thắng ba không"),
    ("vào 3/4 họp", "vào ngày mùng ba tháng tư họp"),
    # document numbers: the slash and the hyphen between codes are not spoken
    ("Quyết định số 123/QĐ-UBND", "Quyết định số một trăm hai mươi ba quyết định Ủy ban nhân dân"),
    ("Công văn số 45/UBND-VP ngày 5/3/2026", "Công văn số bốn mươi lăm Ủy ban nhân dân văn phòng ngày mùng năm "
     "tháng ba năm hai nghìn không trăm hai mươi sáu"),
    ("Nghị định số 12/2026/NĐ-CP", "Nghị định số mười hai năm hai nghìn không trăm hai mươi sáu nghị định "
     "Chính phủ"),
])
def test_cases(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


def test_sample_bulletins_have_no_digits_or_abbreviations_left() -> None:
    blocks = [b for b in re.split(r"^# kind: .*$", SAMPLES.read_text(encoding="utf-8"), flags=re.M)[1:]]
    assert len(blocks) == 4
    for block in blocks:
        spoken = normalize(block)
        assert not re.search(r"\d", spoken), spoken
        assert not re.search(r"\b(UBND|HĐND|TKCN)\b", spoken), spoken
    assert "không chín một hai, ba bốn năm, sáu bảy tám" in normalize(blocks[2])


def test_hostile_text_is_only_text() -> None:
    out = normalize("a\x00b\x1b[31m c\u200b")
    assert not any(ord(ch) < 32 or ch == "\u200b" for ch in out), out
    assert normalize("   ") == ""
    assert normalize("Xin chào 你好 Привет 123") == "Xin chào 你好 Привет một trăm hai mươi ba"


_PIECES = st.sampled_from(["7h", "7h30", "-", "–", "/", "11h", "7.500", "đ", "đồng", "/kg", "/con", "số", "123",
                           "QĐ-UBND", "/2026/", "3/4", "tỷ số", "2/1", "ngày", "25/11/2026", "%", " ", ",", "từ",
                           "0912 345 678", "km/h", "UBND", "9999999999999999", "0", "/", "h"])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=14))
def test_any_mix_of_the_tricky_forms_normalises_without_error(parts: list[str]) -> None:
    text = " ".join(parts)
    out = normalize(text)
    assert not any(ord(ch) < 32 for ch in out)
    assert normalize(out) == out or re.search(r"\d", out)  # spoken text reads the same when read again
    for spoken in re.findall(r"\d+", out):
        assert spoken in text  # digits only survive where the writer put them (odd forms are left alone)
