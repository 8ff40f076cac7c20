"""Uploads against the real agent over HTTP: bombs and liars refused early, long recordings in bounded memory."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.broadcast.store import DB_FILE, Store
from tests.console.conftest import bulletin_form, page_csrf
from tests.console.harness import ConsoleAgent
from tests.support.audiofiles import lying_flac, silent_flac, tone_mp3
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

MAX_GROWTH_MB = 100


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, coc: tuple[Broker, Recorder]) -> Iterator[ConsoleAgent]:
    """Status written every second, so a refusal's counter shows in status.json at once."""
    broker, _ = coc
    tmp = tmp_path_factory.mktemp("agent")
    a = ConsoleAgent(tmp, broker.port, broker.password_file("agent"), extra={"host": {"interval_s": 1}})
    a.add_users().start()
    try:
        yield a
    finally:
        a.stop()


def _kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for {pid}")


class PeakRss:
    """The agent process's peak RSS growth over a block: VmHWM is reset first, then compared with VmRSS before."""

    def __init__(self, agent: ConsoleAgent) -> None:
        assert agent.proc.proc is not None
        self.pid = agent.proc.proc.pid
        self.growth_mb = 0.0

    def __enter__(self) -> PeakRss:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.before = _kib(self.pid, "VmRSS")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.growth_mb = (_kib(self.pid, "VmHWM") - self.before) / 1024


def _upload(agent: ConsoleAgent, session: requests.Session, name: str, data: bytes,
            do: str = "preview") -> requests.Response:
    token = page_csrf(session, agent.url + "/bulletins/new")
    form = {**bulletin_form(source="audio", text="", title="Bản ghi", do=do), "csrf": token}
    return session.post(agent.url + "/bulletins/new", data=form, files={"recording": (name, data, "audio/mpeg")},
                        allow_redirects=False, timeout=60)


def _refused(agent: ConsoleAgent) -> int:
    try:
        status = json.loads((agent.data / "status.json").read_text())
    except (OSError, ValueError):
        return -1
    return int(status.get("drivers", {}).get("console", {}).get("counters", {}).get("upload_refused", 0))


def _error_line(html: str, text: str) -> str:
    """The one line of the page that carries the error."""
    lines = [ln for ln in html.splitlines() if text in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_flac_bomb_named_mp3_is_refused_before_decoding(agent: ConsoleAgent, official: requests.Session,
                                                          tmp_path: Path) -> None:
    bomb = silent_flac(tmp_path / "bomb.flac", 3 * 3600)
    assert bomb.stat().st_size < 3 * 1024 * 1024
    before = _refused(agent)
    with PeakRss(agent) as rss:
        r = _upload(agent, official, "thong-bao.mp3", bomb.read_bytes())
    assert r.status_code == 422
    assert "Bản ghi quá dài (tối đa 900 giây)." in _error_line(r.text, "Bản ghi quá dài")
    print(f"peak_rss_growth_mb={rss.growth_mb:.1f}")
    assert rss.growth_mb <= MAX_GROWTH_MB, rss.growth_mb
    wait_until(lambda: _refused(agent) > before, timeout=15, what="upload_refused counted in status.json")
    assert "upload_refused reason=e_file_long" in agent.proc.log_text()


def test_a_header_that_lies_about_its_length_is_still_capped(agent: ConsoleAgent, official: requests.Session,
                                                             tmp_path: Path) -> None:
    liar = lying_flac(silent_flac(tmp_path / "bomb.flac", 3 * 3600), claim_s=5)
    with PeakRss(agent) as rss:
        r = _upload(agent, official, "ghi-am.mp3", liar.read_bytes())
    assert r.status_code == 422 and "Bản ghi quá dài (tối đa 900 giây)." in r.text
    print(f"peak_rss_growth_mb={rss.growth_mb:.1f}")
    assert rss.growth_mb <= MAX_GROWTH_MB, rss.growth_mb
    assert "more than 900s decoded" in agent.proc.log_text()
    assert not [p for p in (agent.data / "console" / "uploads").glob("upload-*")]  # no temp dir left behind


def test_a_recording_at_the_limit_is_accepted_in_bounded_memory(agent: ConsoleAgent, official: requests.Session,
                                                                tmp_path: Path) -> None:
    """899 s (the limit is 900): upload, decode, level and the preview's render all stream through files."""
    mp3 = tone_mp3(tmp_path / "long.mp3", 899)
    with PeakRss(agent) as rss:
        r = _upload(agent, official, "hop-dan.mp3", mp3.read_bytes())
    assert r.status_code == 200, r.text[-2000:]
    assert "899,0" in r.text  # the preview's duration, in Vietnamese
    print(f"peak_rss_growth_mb={rss.growth_mb:.1f}")
    assert rss.growth_mb <= MAX_GROWTH_MB, rss.growth_mb


@pytest.mark.parametrize("name,data,message", [
    ("rong.mp3", b"", "Không đọc được tệp âm thanh này."),
    ("rac.mp3", random.Random(7).randbytes(200_000), "Không đọc được tệp âm thanh này."),
    ("rac.wav", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0\x01\0\xff\xff\0\x28\x6b\xee\0\0\0\0\xff\xff\x10\0data"
     + b"\x01" * 5000, "Không đọc được tệp âm thanh này."),
    ("nhieu-kenh.wav", None, "Không đọc được tệp âm thanh này."),
    ("ghi-am.flac", b"fLaC", "Chỉ nhận tệp mp3, wav hoặc m4a."),
    ("khong-duoi", b"ID3", "Chỉ nhận tệp mp3, wav hoặc m4a."),
])
def test_hostile_files_get_a_one_line_error(agent: ConsoleAgent, official: requests.Session, tmp_path: Path,
                                            name: str, data: bytes | None, message: str) -> None:
    if data is None:  # 64 channels at 768 kHz: ffmpeg reads it, the probe refuses it
        data = _wav_header(64, 768_000) + b"\x01" * 100_000
    r = _upload(agent, official, name, data)
    assert r.status_code == 422
    _error_line(r.text, message)
    assert agent.proc.proc is not None and agent.proc.proc.poll() is None


def _wav_header(channels: int, rate: int) -> bytes:
    import struct

    return (b"RIFF" + struct.pack("<I", 36 + 100_000) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
            + b"data" + struct.pack("<I", 100_000))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=4096), suffix=st.sampled_from([".mp3", ".wav", ".m4a"]))
def test_garbage_bytes_never_crash_the_console(agent: ConsoleAgent, official: requests.Session, data: bytes,
                                               suffix: str) -> None:
    r = _upload(agent, official, "x" + suffix, data)
    assert r.status_code in (200, 422)
    assert agent.proc.proc is not None and agent.proc.proc.poll() is None


def _played(agent: ConsoleAgent, bid: str) -> bool:
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        return any(r["outcome"] == "played" for r in st.asrun(bulletin_id=bid))
    finally:
        st.close()


def test_airing_a_recording_at_the_limit_stays_in_bounded_memory(agent: ConsoleAgent, official: requests.Session,
                                                                 tmp_path: Path) -> None:
    """Saved, rendered, then played now on the sound card (ALSA's file device: as fast as it can write)."""
    mp3 = tone_mp3(tmp_path / "long.mp3", 899)
    token = page_csrf(official, agent.url + "/bulletins/new")
    form = {**bulletin_form(source="audio", text="", title="Bản ghi dài", sched="once", once_date="31/12/2099",
                            once_time="03:00", zones="loa"), "csrf": token}
    r = official.post(agent.url + "/bulletins/new", data=form, allow_redirects=False, timeout=60,
                      files={"recording": ("hop-dan.mp3", mp3.read_bytes(), "audio/mpeg")})
    assert r.status_code == 303, r.text[-2000:]
    st = Store(agent.data / "broadcast" / DB_FILE)
    try:
        bid = next(s.bulletin.id for s in st.all() if s.bulletin.title == "Bản ghi dài")
    finally:
        st.close()
    with PeakRss(agent) as rss:
        r = official.post(agent.url + f"/bulletins/{bid}/play", data={"csrf": token}, timeout=60)
        assert r.status_code == 200
        wait_until(lambda: _played(agent, bid), timeout=60, interval=0.2, what="the airing's as-run row")
    print(f"peak_rss_growth_mb={rss.growth_mb:.1f}")
    assert rss.growth_mb <= MAX_GROWTH_MB, rss.growth_mb
