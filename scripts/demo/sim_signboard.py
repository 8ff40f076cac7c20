"""Demo signboards: a Huidu LED card on 127.0.0.1:18901 (the test suite's card simulator) and the commune
leaders' weekly work schedule as a CSV file the `signboard` section loads (demo.yaml: schedule_file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
PORT = 18901  # demo.yaml: signboard.boards.cho.port
SCHEDULE = """day,time,what,who,where
Thứ Hai,07:30,Họp giao ban đầu tuần,Chủ tịch UBND xã,Hội trường UBND
Thứ Ba,08:00,Kiểm tra đê bao thôn Đông,Phó Chủ tịch UBND xã,Thôn Đông
Thứ Tư,14:00,Tiếp công dân định kỳ,Chủ tịch UBND xã,Phòng tiếp dân
Thứ Năm,08:00,Họp Ban chỉ đạo phòng chống thiên tai,Chủ tịch UBND xã,Hội trường UBND
Thứ Sáu,15:00,Làm việc với HTX nông nghiệp,Phó Chủ tịch UBND xã,HTX Nghi Ân
"""


def start(workdir: Path) -> Callable[[], None]:
    sys.path.insert(0, str(ROOT))
    from tests.signboard.huidu_sim import Card

    sbdir = workdir / "signboard"
    sbdir.mkdir(parents=True, exist_ok=True)
    (sbdir / "lich-cong-tac.csv").write_text(SCHEDULE, encoding="utf-8")
    card = Card(port=PORT).start()
    return card.stop
