"""HTTP push to a local speaker that speaks the Axis audio API with RFC 7616 digest auth."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.broadcast.audio import Audio, resample, ulaw_encode
from drivers.broadcast.config import HttpZone
from drivers.broadcast.outputs import OutputError
from drivers.broadcast.outputs.httppush import HttpPushOutput
from tests.broadcast.support import DigestSpeaker


def _tone(seconds: float) -> Audio:
    t = np.arange(int(16000 * seconds)) / 16000
    return Audio((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), 16000)


def _zone(tmp_path: Path, url: str, password: str) -> HttpZone:
    secret = tmp_path / "speaker.secret"
    secret.write_text(password + "\n")
    return HttpZone(type="http", url=url, username="root", password_file=secret)


@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("MD5",)])
def test_push_with_digest_auth_delivers_ulaw(tmp_path: Path, algorithms: tuple[str, ...]) -> None:
    speaker = DigestSpeaker("root", "s3cret-pass", algorithms=algorithms)
    try:
        audio = _tone(0.5)
        session = HttpPushOutput(_zone(tmp_path, speaker.url, "s3cret-pass")).open(audio)
        try:
            result = session.play(time.monotonic() + 0.05, threading.Event())
        finally:
            session.close()
        assert not result.interrupted and result.ended - result.started >= 0.35  # sent at playing speed
        assert speaker.bodies == [ulaw_encode(resample(audio, 8000).samples)]
        assert speaker.content_types == ["audio/basic"]
        assert speaker.rejected == 0
    finally:
        speaker.stop()


def test_wrong_password_is_rejected(tmp_path: Path, speaker: DigestSpeaker) -> None:
    session = HttpPushOutput(_zone(tmp_path, speaker.url, "wrong")).open(_tone(0.2))
    try:
        with pytest.raises(OutputError, match="rejected the login"):
            session.play(time.monotonic(), threading.Event())
    finally:
        session.close()
    assert speaker.bodies == [] and speaker.rejected == 1


def test_missing_login_and_dead_speaker_are_clear_errors(tmp_path: Path, speaker: DigestSpeaker) -> None:
    with pytest.raises(OutputError, match="wants a login"):
        HttpPushOutput(HttpZone(type="http", url=speaker.url)).open(_tone(0.1))
    speaker.stop()
    with pytest.raises(OutputError, match="http 127.0.0.1"):
        HttpPushOutput(_zone(tmp_path, speaker.url, "s3cret-pass")).open(_tone(0.1))
