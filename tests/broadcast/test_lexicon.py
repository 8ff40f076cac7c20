"""The pronunciation lexicon: pushed through the `broadcast` command (validated, bounded, saved on the box, kept
across a restart) and applied before either engine speaks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.driver import CommandError
from drivers.broadcast.config import TtsConfig
from drivers.broadcast.lexicon import FILE, MAX_ENTRIES, Lexicon
from drivers.broadcast.tts import Synthesizer, TtsError
from tests.broadcast.harness import config, running

TEXT = "Thông báo của HTX Krông Pắc: mức nước BĐ3."
ZONE = {"loa": {"type": "rtp", "group": "239.255.0.23", "port": 5004, "ttl": 0, "interface": "127.0.0.1"}}


def test_a_district_push_is_validated_saved_used_and_kept_across_a_restart(tmp_path: Path) -> None:
    cfg = config(tmp_path, ZONE, tts={"engines": ["espeak"]})
    data = tmp_path / "data"
    push = {"action": "lexicon", "op": "replace", "source": "coc",
            "entries": {"Krông Pắc": "Crông Pắc", "HTX": "hợp tác xã dịch vụ"}}

    async def first() -> tuple[dict, dict, dict, list[str], int]:
        async with running(cfg, data) as ctx:
            handler = ctx.commands["broadcast"]
            before = await handler({"action": "preview", "bulletin": {"id": "p1", "text": TEXT}})
            pushed = await handler(push)
            after = await handler({"action": "preview", "bulletin": {"id": "p2", "text": TEXT}})
            refused = []
            for bad in ({"op": "set", "entries": {"HTX": "x" * 121}},
                        {"op": "set", "entries": {"<b>": "b"}},
                        {"op": "set", "entries": {"A\x00B": "b"}},
                        {"op": "replace", "entries": {f"T{i}": "t" for i in range(MAX_ENTRIES + 1)}},
                        {"op": "drop"}, {"op": "set", "entries": ["HTX"]},
                        {"op": "set", "entries": {"HTX": "y"}, "if_version": 0}):
                with pytest.raises(CommandError) as err:
                    await handler({"action": "lexicon", **bad})
                refused.append(str(err.value))
            return before, pushed, after, refused, ctx.counters["bad_command"]

    before, pushed, after, refused, bad = asyncio.run(first())
    assert "hợp tác xã Krông Pắc" in before["spoken"]
    assert pushed == {"version": 1, "entries": 2}
    assert after["spoken"] == "Thông báo của hợp tác xã dịch vụ Crông Pắc: mức nước báo động ba."
    assert after["wav"] != before["wav"]  # a new rendering, not the cached one with the old words
    assert bad == len(refused) == 7, refused
    assert "changed meanwhile" in refused[-1]
    saved = json.loads((data / FILE).read_text(encoding="utf-8"))
    assert saved["entries"] == push["entries"] and saved["updated_by"] == "coc"

    async def again() -> tuple[dict, dict, dict]:
        async with running(cfg, data) as ctx:
            handler = ctx.commands["broadcast"]
            got = await handler({"action": "lexicon", "op": "get"})
            await handler({"action": "lexicon", "op": "delete", "written": ["HTX"], "if_version": 1})
            spoken = await handler({"action": "preview", "bulletin": {"id": "p3", "text": TEXT}})
            return got, spoken, await handler({"action": "lexicon"})

    got, spoken, last = asyncio.run(again())
    assert got["version"] == 1 and got["entries"] == push["entries"]
    assert spoken["spoken"] == "Thông báo của hợp tác xã Crông Pắc: mức nước báo động ba."
    assert last["version"] == 2 and last["entries"] == {"Krông Pắc": "Crông Pắc"}


def test_both_engines_are_given_the_lexicon_words(tmp_path: Path) -> None:
    lex = Lexicon(tmp_path / FILE)
    lex.adopt(lex.change("set", {"entries": {"Krông Pắc": "Crông Pắc"}}, "console:ana"))
    asked: list[str] = []

    def offline_gtts(text: str, cfg: TtsConfig, dest: Path) -> None:
        asked.append(text)
        raise OSError("no network")

    synth = Synthesizer(TtsConfig(gtts_timeout_s=2), tmp_path / "cache", fetch_gtts=offline_gtts, lexicon=lex)
    r = synth.render_text("Xã Krông Pắc thông báo.")
    assert asked == ["Xã Crông Pắc thông báo."]  # gTTS first …
    assert r.engine == "espeak" and r.duration_s > 0.5  # … and espeak-ng after it, from the same spoken text
    espeak_only = Synthesizer(TtsConfig(engines=["espeak"]), tmp_path / "cache", lexicon=lex)
    assert espeak_only.spoken_text("Krông Pắc") == "Crông Pắc"
    with pytest.raises(TtsError):
        espeak_only.spoken_text("   ")
