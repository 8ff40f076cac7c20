"""ALSA without a sound card: the default device written into a WAV file, for agents that air bulletins."""

from __future__ import annotations

from pathlib import Path

ASOUNDRC = ('pcm.!default {{ type plug; slave.pcm "cap" }}\n'
            'pcm.cap {{ type file; slave.pcm "null"; file "{out}"; format "wav" }}\n')


def alsa_home(home: Path, out: Path) -> Path:
    """A HOME whose .asoundrc sends the default ALSA device into a WAV file (no sound card here)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".asoundrc").write_text(ASOUNDRC.format(out=out))
    return home
