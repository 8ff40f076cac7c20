"""Fixtures for the broadcast tests: real RTP receiver, digest-auth speaker, ALSA file device."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.broadcast.support import DigestSpeaker, RtpReceiver
from tests.support.alsa import alsa_home
from tests.support.ports import free_port


@pytest.fixture
def rtp() -> Iterator[RtpReceiver]:
    import os
    import socket

    group = f"239.255.{os.getpid() % 250}.{(os.getpid() // 250) % 250 + 1}"
    r = RtpReceiver(group, free_port(socket.SOCK_DGRAM))
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def speaker() -> Iterator[DigestSpeaker]:
    s = DigestSpeaker("root", "s3cret-pass")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def alsa_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The WAV the default ALSA device writes to; HOME points at a dir with the matching .asoundrc."""
    out = tmp_path / "alsa-out.wav"
    monkeypatch.setenv("HOME", str(alsa_home(tmp_path / "home", out)))
    return out
