"""Streaming decode and levelling: the same samples as the in-memory path, with hard caps on what a file claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from drivers.broadcast import audio
from drivers.broadcast.audio import Audio, level_file, read_wav, write_wav
from drivers.broadcast.decode import DecodeError, decode_capped, probe
from drivers.broadcast.track import Track, regroup
from drivers.broadcast.tts import decode_file
from tests.support.audiofiles import lying_flac, silent_flac, speech_like_wav, tone_mp3


def _pieces(a: Audio, sizes: list[int]) -> list[Audio]:
    out, i = [], 0
    for n in sizes:
        out.append(Audio(a.samples[i: i + n], a.rate))
        i += n
    out.append(Audio(a.samples[i:], a.rate))
    return out


@settings(max_examples=60, deadline=None)
@given(samples=arrays(np.int16, st.integers(0, 30_000)), rate=st.sampled_from([8000, 16000, 22050]),
       sizes=st.lists(st.integers(1, 9000), max_size=6))
def test_loudness_over_pieces_is_the_loudness_of_the_whole(samples: np.ndarray, rate: int, sizes: list[int]) -> None:
    a = Audio(samples, rate)
    assert audio.gated_rms_dbfs_chunks(_pieces(a, sizes)) == audio.gated_rms_dbfs(a)


def _with_spikes(rate: int = 16000, seconds: float = 6.0) -> Audio:
    """Quiet speech-like tone with loud clicks: levelling it up drives the clicks into the soft limiter."""
    t = np.arange(int(rate * seconds)) / rate
    x = 0.05 * np.sin(2 * np.pi * 300 * t) * (np.mod(t, 1.2) < 0.8)
    x[:: rate // 2] = 0.95
    return Audio(np.round(x * 32767).astype(np.int16), rate)


@pytest.mark.parametrize("make", ["ffmpeg-stereo", "spikes", "silence"])
def test_level_file_writes_what_level_gave(tmp_path: Path, make: str) -> None:
    src = tmp_path / "in.wav"
    if make == "ffmpeg-stereo":
        speech_like_wav(src)
    else:
        write_wav(src, _with_spikes() if make == "spikes" else Audio(np.zeros(16000, np.int16), 16000))
    old = audio.level(read_wav(src), -20.0)
    seconds = level_file(src, tmp_path / "out.wav", -20.0)
    new = read_wav(tmp_path / "out.wav")
    assert new.rate == old.rate and seconds == pytest.approx(old.duration_s)
    assert np.array_equal(new.samples, old.samples)
    if make == "spikes":
        assert np.abs(old.samples).max() > 0.89 * 32767  # the limiter was in play
    assert sum(len(a.samples) for a in audio.read_wav_chunks(src, 1000)) == len(read_wav(src).samples)


def test_decode_capped_gives_the_samples_the_old_decode_gave(tmp_path: Path) -> None:
    mp3 = tone_mp3(tmp_path / "t.mp3", 3)
    seconds = decode_capped(mp3, tmp_path / "new.wav", 16000, 10)
    new, old = read_wav(tmp_path / "new.wav"), decode_file(mp3, 16000)
    assert seconds == pytest.approx(old.duration_s) and np.array_equal(new.samples, old.samples)


def test_a_bomb_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    bomb = silent_flac(tmp_path / "bomb.flac", 3 * 3600)
    with pytest.raises(DecodeError) as err:
        decode_capped(bomb, tmp_path / "out.wav", 16000, 900)
    assert err.value.reason == "too_long" and "says 10800s" in str(err.value)
    assert not (tmp_path / "out.wav").exists()


def test_a_lying_header_is_capped_by_the_decode(tmp_path: Path) -> None:
    liar = lying_flac(silent_flac(tmp_path / "bomb.flac", 3 * 3600), claim_s=5)
    assert probe(liar).duration_s == pytest.approx(5.0)  # ffprobe believes the header
    with pytest.raises(DecodeError) as err:
        decode_capped(liar, tmp_path / "out.wav", 16000, 60)
    assert err.value.reason == "too_long"
    # the decode stopped one second past the limit instead of writing 3 h (345 MB at 16 kHz)
    assert (tmp_path / "out.wav").stat().st_size <= 61 * 16000 * 2 + 4096


def test_playlists_and_other_demuxers_that_open_files_are_refused(tmp_path: Path) -> None:
    secret = tone_mp3(tmp_path / "secret.mp3", 1)
    playlist = tmp_path / "list.mp3"
    playlist.write_text(f"ffconcat version 1.0\nfile '{secret.name}'\n")
    hls = tmp_path / "hls.mp3"
    hls.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n#EXT-X-ENDLIST\n")
    for f in (playlist, hls):
        with pytest.raises(DecodeError) as err:
            decode_capped(f, tmp_path / "out.wav", 16000, 60)
        assert err.value.reason == "unreadable"


def test_levelling_a_long_file_keeps_memory_flat(tmp_path: Path) -> None:
    """15 min at 16 kHz in a fresh interpreter: read_wav + level would need ~400 MB; the stream needs a few."""
    src = tmp_path / "long.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=300:duration=900:sample_rate=16000", "-c:a", "pcm_s16le", str(src)], check=True)
    code = ("import resource, sys; from pathlib import Path; from drivers.broadcast.audio import level_file;"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
            "level_file(Path(sys.argv[1]), Path(sys.argv[2]), -20.0);"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out.wav")], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert float(out.stdout) < 30, out.stdout


@settings(max_examples=80, deadline=None)
@given(samples=arrays(np.int16, st.integers(0, 3000)), rate=st.sampled_from([8000, 16000, 22050, 44100]),
       out_rate=st.sampled_from([8000, 16000]), gain=st.sampled_from([1.0, 0.5, 2.7]),
       cut=st.floats(0, 1), frames=st.integers(1, 700))
def test_a_track_in_pieces_airs_the_samples_of_the_whole(tmp_path_factory: pytest.TempPathFactory,
                                                         samples: np.ndarray, rate: int, out_rate: int, gain: float,
                                                         cut: float, frames: int) -> None:
    """Chime in memory + speech from its file, scaled and resampled piece by piece == the old whole-array path."""
    k = int(cut * len(samples))
    wav = tmp_path_factory.mktemp("t") / "speech.wav"
    write_wav(wav, Audio(samples[k:], rate))
    track = Track(rate, (samples[:k], wav)).with_gain(gain)
    whole = audio.resample(audio.scale(Audio(samples, rate), gain), out_rate).samples
    got = np.concatenate([np.zeros(0, np.int16), *track.resampled(out_rate, frames)])
    assert np.array_equal(got, whole) and track.ulaw_bytes(out_rate) == len(whole)
    assert b"".join(regroup(track.ulaw(out_rate, frames), 160)) == audio.ulaw_encode(whole)


def test_a_render_pruned_while_on_air_still_plays(tmp_path: Path) -> None:
    wav = tmp_path / "render.wav"
    write_wav(wav, Audio(np.arange(-5000, 5000, dtype=np.int16), 16000))
    track = Track(16000, (wav,))
    wav.unlink()
    assert np.array_equal(np.concatenate(list(track.pieces(999))), np.arange(-5000, 5000, dtype=np.int16))
