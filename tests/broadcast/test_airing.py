"""End to end: a bulletin dropped into the watched directory airs on the sound card and RTP multicast."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from drivers.broadcast.audio import read_wav, resample, ulaw_decode
from drivers.broadcast.outputs.rtp import payloads
from tests.broadcast.harness import SHORT_VI, asruns, config, local_at, running, write_bulletin
from tests.broadcast.support import RtpReceiver
from tests.support.wait import async_wait_until


@pytest.mark.slow
def test_file_bulletin_airs_on_soundcard_and_rtp(tmp_path: Path, alsa_out: Path, rtp: RtpReceiver) -> None:
    cfg = config(tmp_path, {
        "amp": {"type": "soundcard", "device": "default"},
        "loa": {"type": "rtp", "group": rtp.group, "port": rtp.port, "ttl": 0, "interface": "127.0.0.1"},
    })

    async def scenario() -> list[dict]:
        async with running(cfg, tmp_path / "data") as ctx:
            write_bulletin(tmp_path / "bulletins", "hop", {"title": "Họp giao ban", "text": SHORT_VI,
                                                          "schedule": {"at": local_at(4.0)}})
            await async_wait_until(lambda: len(asruns(ctx)) >= 2, timeout=40, what="two as-run records")
            return asruns(ctx)

    records = asyncio.run(scenario())
    assert {r["zone"] for r in records} == {"amp", "loa"}
    for r in records:
        assert r["outcome"] == "played", r
        assert r["engine"] == "espeak"  # gTTS is unreachable here: the offline fallback spoke it
        assert r["lateness_ms"] < 1000, r

    aired = read_wav(alsa_out)
    assert aired.rate == 16000
    assert aired.duration_s > 2.5  # chime (1.4 s) + pause + speech

    packets = rtp.snapshot()
    assert packets, "no RTP packets"
    assert {p.pt for p in packets} == {0} and {p.version for p in packets} == {2}
    assert len({p.ssrc for p in packets}) == 1
    seqs = [p.seq for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:])), "sequence numbers have gaps"
    assert all((b.ts - a.ts) % 2**32 == 160 for a, b in zip(packets, packets[1:]))
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert all(len(p.payload) == 160 for p in packets)
    gaps = np.diff([p.arrival for p in packets]) * 1000
    assert abs(np.median(gaps) - 20.0) < 2.0, np.median(gaps)
    total = packets[-1].arrival - packets[0].arrival
    assert abs(total - 0.02 * (len(packets) - 1)) < 0.25, total  # paced in real time, not bursted

    # the same rendered audio went to both zones: RTP carries exactly its µ-law encoding
    assert b"".join(p.payload for p in packets) == b"".join(payloads(aired))
    decoded = ulaw_decode(b"".join(p.payload for p in packets)).astype(np.float64)
    ref = resample(aired, 8000).samples.astype(np.float64)
    decoded = decoded[: len(ref)]
    snr = 10 * np.log10(np.sum(ref**2) / max(1.0, np.sum((ref - decoded) ** 2)))
    assert snr > 25, snr
