"""The words a notice abbreviates and how an announcer says them: abbreviations, units, document and road codes."""

from __future__ import annotations

# Whole words, case-sensitive: how commune notices write them.
ABBREVIATIONS: dict[str, str] = {
    "UBND": "Ủy ban nhân dân", "HĐND": "Hội đồng nhân dân", "MTTQ": "Mặt trận Tổ quốc",
    "UBMTTQ": "Ủy ban Mặt trận Tổ quốc", "TKCN": "tìm kiếm cứu nạn", "PCTT": "phòng chống thiên tai",
    "PCCC": "phòng cháy chữa cháy", "BCH": "Ban Chỉ huy", "BCĐ": "Ban Chỉ đạo", "BCHQS": "Ban Chỉ huy quân sự",
    "THCS": "trung học cơ sở", "THPT": "trung học phổ thông", "BHYT": "bảo hiểm y tế", "BHXH": "bảo hiểm xã hội",
    "CCCD": "căn cước công dân", "HTX": "hợp tác xã", "CSGT": "cảnh sát giao thông", "KT-XH": "kinh tế xã hội",
    "ATGT": "an toàn giao thông", "SĐT": "số điện thoại", "ĐT": "điện thoại", "TP.HCM": "thành phố Hồ Chí Minh",
    "TPHCM": "thành phố Hồ Chí Minh", "TP": "thành phố", "Tp.": "thành phố", "TX": "thị xã", "TT": "thị trấn",
    "CN": "chủ nhật", "NTM": "nông thôn mới", "ATTP": "an toàn thực phẩm", "VSATTP": "vệ sinh an toàn thực phẩm",
    "GPMB": "giải phóng mặt bằng", "KTTV": "khí tượng thủy văn", "ATNĐ": "áp thấp nhiệt đới",
    "NN&PTNT": "Nông nghiệp và Phát triển nông thôn", "PTNT": "phát triển nông thôn",
    "TN&MT": "Tài nguyên và Môi trường", "GD&ĐT": "Giáo dục và Đào tạo",
    "LĐTB&XH": "Lao động Thương binh và Xã hội", "TYT": "trạm y tế", "BQL": "Ban quản lý", "ANTT": "an ninh trật tự",
    "ANQP": "an ninh quốc phòng", "NVQS": "nghĩa vụ quân sự", "QSDĐ": "quyền sử dụng đất", "GCN": "giấy chứng nhận",
    "KCB": "khám chữa bệnh", "SXH": "sốt xuất huyết", "TCM": "tay chân miệng", "DTLCP": "dịch tả lợn châu Phi",
    "LMLM": "lở mồm long móng", "BVTV": "bảo vệ thực vật", "HLHPN": "Hội Liên hiệp Phụ nữ",
    "HND": "Hội Nông dân", "HCCB": "Hội Cựu chiến binh", "ĐTN": "Đoàn Thanh niên", "CAX": "Công an xã",
    "SXKD": "sản xuất kinh doanh", "KHHGĐ": "kế hoạch hóa gia đình", "ĐBSCL": "đồng bằng sông Cửu Long",
    "TW": "Trung ương", "v.v.": "vân vân", "v.v": "vân vân", "COVID-19": "Cô vít mười chín",
    "Covid-19": "Cô vít mười chín",
}
UNITS: dict[str, str] = {
    "km/h": "ki lô mét một giờ", "m/s": "mét một giây", "mm": "mi li mét", "cm": "xen ti mét", "km": "ki lô mét",
    "km2": "ki lô mét vuông", "km²": "ki lô mét vuông", "kg": "ki lô gam", "g": "gam", "ha": "héc ta",
    "m2": "mét vuông", "m²": "mét vuông", "m3": "mét khối", "m³": "mét khối", "m": "mét", "°C": "độ C",
    "oC": "độ C", "ºC": "độ C", "⁰C": "độ C", "tấn": "tấn", "tạ": "tạ", "yến": "yến", "lít": "lít", "l": "lít",
    "ml": "mi li lít", "kW": "ki lô oát", "kWh": "ki lô oát giờ", "MW": "mê ga oát", "%": "phần trăm",
}
# Units only written after a slash ("m3/s").
PER_UNITS: dict[str, str] = {"s": "giây", "h": "giờ"}
# Words after a slash that make it "per": "đồng/con", "tấn/ha", "người/ngày".
PER_BEFORE = frozenset(("đồng", "đ", "tấn", "tạ", "yến", "kg", "con", "lít", "người", "lượt", "hộ", "khẩu", "cây",
                        "quả", "bao", "km", "m", "mét", "ngày", "giờ", "suất", "phần", "liều", "cái", "chiếc",
                        "bó", "thùng", "ngàn", "nghìn", "triệu"))
MONEY = ("VNĐ", "VND", "vnđ", "đồng", "đ")
# Document type and issuer codes in a document number ("số 123/QĐ-UBND"), read as words.
DOC_CODES: dict[str, str] = {
    "QĐ": "quyết định", "CĐ": "công điện", "NQ": "nghị quyết", "NĐ": "nghị định", "CT": "chỉ thị", "TB": "thông báo",
    "KH": "kế hoạch", "BC": "báo cáo", "CV": "công văn", "TTr": "tờ trình", "TT": "thông tư", "HD": "hướng dẫn",
    "GM": "giấy mời", "KL": "kết luận", "UBND": "Ủy ban nhân dân", "HĐND": "Hội đồng nhân dân", "CP": "Chính phủ",
    "TTg": "Thủ tướng", "VP": "văn phòng", "BCĐ": "Ban Chỉ đạo", "BCH": "Ban Chỉ huy", "MTTQ": "Mặt trận Tổ quốc",
    "BTC": "Bộ Tài chính", "BNN": "Bộ Nông nghiệp", "PTNT": "phát triển nông thôn", "TNMT": "tài nguyên môi trường",
    "QH": "Quốc hội", "TU": "Tỉnh ủy", "HU": "Huyện ủy", "ĐU": "Đảng ủy", "BYT": "Bộ Y tế", "SYT": "Sở Y tế",
    "CAX": "Công an xã", "BCHQS": "Ban Chỉ huy quân sự", "PCTT": "phòng chống thiên tai",
    "TKCN": "tìm kiếm cứu nạn", "TCT": "Tổng cục Thuế", "CCT": "Chi cục Thuế", "SNN": "Sở Nông nghiệp",
}
# Road codes before a road number: "QL14" is "quốc lộ mười bốn", "ĐT 542" "đường tỉnh năm trăm bốn mươi hai".
ROADS: dict[str, str] = {"QL": "quốc lộ", "ĐT": "đường tỉnh", "TL": "tỉnh lộ", "ĐH": "đường huyện",
                         "HL": "hương lộ", "ĐX": "đường xã", "ĐCT": "đường cao tốc"}
# Words after which a Roman numeral is a number ("quý IV", "khóa XV", "Đại hội XIII").
ROMAN_AFTER = frozenset(("quý", "khóa", "khoá", "kỳ", "kì", "đợt", "đoạn", "cấp", "phần", "chương", "mục", "kỷ",
                         "vòng", "hội", "lần", "thứ", "báo động", "nhóm", "loại", "hạng", "vùng", "phụ lục", "điều"))
# Words before a number that make it a code read digit by digit.
DIGITS_AFTER = ("mã số", "mã", "tài khoản", "biển số", "số hiệu", "hotline", "đường dây nóng", "gọi", "gọi ngay",
                "quay số", "bấm số", "fax",
                "sđt", "số điện thoại", "điện thoại", "đt", "liên hệ", "cccd", "căn cước", "tổng đài")
# Words around "a/b" that make it a fraction and not the a-th of month b.
FRACTION_BEFORE = frozenset(("đạt", "khoảng", "gần", "hơn", "trên", "dưới", "chiếm", "bằng", "còn", "được",
                             "mất", "hết", "tăng", "giảm", "thêm", "có", "cả"))
FRACTION_AFTER = ("số", "diện tích", "kế hoạch", "chỉ tiêu", "dân số", "tổng", "lượng", "sản lượng", "hộ", "thôn",
                  "xã", "người", "học sinh", "ấp", "bản", "tổ dân phố", "trường", "con", "tiêu chí", "đơn vị", "xóm",
                  "khu", "lao động", "gia đình", "cử tri", "đàn")
DATE_BEFORE = frozenset(("ngày", "mùng", "mồng", "vào", "hôm", "sáng", "chiều", "tối", "trưa", "đêm", "hạn", "lúc",
                         "từ", "đến", "tới", "trước", "sau", "và", "nhật"))
SCORE_BEFORE = ("tỷ số", "tỉ số", "thắng", "thua", "hòa", "hoà", "kết quả")
RATIO_BEFORE = ("tỷ lệ", "tỉ lệ", "pha", "trộn")
