"""Speech: gTTS unreachable → espeak-ng, a cached gTTS rendering reused offline, equal loudness, hostile text."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drivers.broadcast.audio import gated_rms_dbfs, read_wav
from drivers.broadcast.config import TtsConfig
from drivers.broadcast.tts import Synthesizer, TtsError

TEXT = "UBND xã thông báo: họp lúc 7h30 ngày 25/11/2026."


def _no_network(text: str, cfg: TtsConfig, dest: Path) -> None:
    raise AssertionError("a cache hit must not touch the network")


def _mp3_from_espeak(text: str, dest: Path, gain_db: float) -> None:
    """Stand-in for what Google returns: an MP3 of Vietnamese speech, deliberately at another level."""
    wav = dest.with_suffix(".src.wav")
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(wav), "--stdin"], input=text.encode(), check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-af", f"volume={gain_db}dB",
                    "-ar", "24000", "-codec:a", "libmp3lame", "-b:a", "32k", str(dest)], check=True)


def test_gtts_unreachable_falls_back_to_espeak(tmp_path: Path) -> None:
    synth = Synthesizer(TtsConfig(gtts_timeout_s=2), tmp_path)  # the real gTTS: no internet here
    r = synth.render_text(TEXT)
    assert r.engine == "espeak"
    assert read_wav(r.path).rate == 16000 and r.duration_s > 1.0
    with pytest.raises(TtsError, match="gtts"):
        Synthesizer(TtsConfig(engines=["gtts"], gtts_timeout_s=2), tmp_path / "only").render_text(TEXT)


def test_cached_gtts_is_reused_without_network_and_levelled_like_espeak(tmp_path: Path) -> None:
    synth = Synthesizer(TtsConfig(), tmp_path, fetch_gtts=_no_network)
    spoken = synth.spoken_text(TEXT)
    _mp3_from_espeak(spoken, synth.gtts_cache_path(spoken), gain_db=-14)
    g = synth.render_text(TEXT)
    assert g.engine == "gtts"
    e = synth.render_text(TEXT, "espeak")
    assert e.engine == "espeak"
    lg, le = gated_rms_dbfs(read_wav(g.path)), gated_rms_dbfs(read_wav(e.path))
    assert abs(lg - le) < 1.0 and abs(lg - TtsConfig().target_dbfs) < 1.0, (lg, le)
    # a second render is served from the rendered-WAV cache
    assert synth.render_text(TEXT).path == g.path


@pytest.mark.parametrize("text", [
    "Thông báo; rm -rf / && touch {marker} $(touch {marker}) `touch {marker}` | cat > {marker}",
    "-v en --help 'quoted' \"double\" \\ backslash",
    "Xin chào 你好 Привет مرحبا 123 🙂",
])
def test_hostile_text_is_spoken_never_executed(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "pwned"
    synth = Synthesizer(TtsConfig(engines=["espeak"]), tmp_path / "cache")
    r = synth.render_text(text.format(marker=marker))
    assert r.duration_s > 0.5
    assert not marker.exists()


@pytest.mark.parametrize("text, error", [
    ("", "nothing to speak"),
    ("   \n\t ", "nothing to speak"),
    ("!!! ... ???", "nothing to speak"),
    ("a" * (1024 * 1024), "too long"),
])
def test_unspeakable_text_is_a_clear_error(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(TtsError, match=error):
        Synthesizer(TtsConfig(engines=["espeak"]), tmp_path).render_text(text)


def test_one_text_rendered_by_several_threads_at_once(tmp_path: Path) -> None:
    """Twenty bulletins with the same words, rendered by the driver's two threads: every one gets its audio."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    together = threading.Barrier(4, timeout=30)

    def slow_mp3(text: str, cfg: TtsConfig, dest: Path) -> None:
        src = tmp_path / f"src-{threading.get_ident()}.mp3"
        _mp3_from_espeak(text, src, 0.0)
        dest.write_bytes(src.read_bytes())
        together.wait()  # all four fetches finish before any of them moves its file into the cache

    synth = Synthesizer(TtsConfig(), tmp_path, fetch_gtts=slow_mp3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: synth.render_text(TEXT), range(8)))
    assert {r.engine for r in results} == {"gtts"} and {r.path for r in results} == {results[0].path}
    assert all(r.duration_s > 1.0 for r in results)
    assert read_wav(results[0].path).rate == 16000
    assert not list(tmp_path.rglob("*.part"))  # no temp file left behind
