"""Driver rules: emergency interrupt, persistence and misfire across a restart, COC command, file errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.driver import CommandError
from drivers.broadcast.bulletin import Bulletin
from drivers.broadcast.store import DB_FILE, Store
from tests.broadcast.harness import SHORT_VI, asruns, config, local_at, running, write_bulletin
from tests.broadcast.support import RtpReceiver
from tests.support.wait import async_wait_until

LONG_VI = ("Thông báo của Ủy ban nhân dân xã về lịch thu gom rác thải sinh hoạt trong tháng này. "
           "Đề nghị bà con để rác đúng nơi quy định và đúng giờ. Xin cảm ơn bà con.")


def _rtp_zone(rtp: RtpReceiver) -> dict:
    return {"type": "rtp", "group": rtp.group, "port": rtp.port, "ttl": 0, "interface": "127.0.0.1"}


def _active(data: Path) -> list[str]:
    store = Store(data / DB_FILE)
    try:
        return [s.bulletin.id for s in store.all()]
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["requeue", "mark"])
def test_emergency_interrupts_and_the_interrupted_bulletin_is_requeued_or_marked(
        tmp_path: Path, rtp: RtpReceiver, policy: str) -> None:
    cfg = config(tmp_path, {"loa": _rtp_zone(rtp)}, emergency_interrupt=policy)

    async def scenario() -> list[dict]:
        async with running(cfg, tmp_path / "data") as ctx:
            handler = ctx.commands["broadcast"]
            await handler({"action": "create", "bulletin": {"id": "rac", "text": LONG_VI,
                                                            "schedule": {"at": local_at(2.5)}}})
            await handler({"action": "create", "bulletin": {
                "id": "bao", "priority": "emergency", "text": "Khẩn cấp! Bão số 7 đổ bộ.",
                "schedule": {"at": local_at(5.0)}}})
            want = 3 if policy == "requeue" else 2
            await async_wait_until(lambda: len(asruns(ctx)) >= want, timeout=60, what="as-run records")
            return asruns(ctx)

    records = asyncio.run(scenario())
    first, emergency = records[0], records[1]
    assert first["bulletin_id"] == "rac" and first["outcome"] == "interrupted"
    assert "emergency bao" in first["reason"]
    assert emergency["bulletin_id"] == "bao" and emergency["outcome"] == "played"
    assert emergency["lateness_ms"] < 1000
    assert first["ended"] <= emergency["started"] + 0.5
    if policy == "requeue":
        again = records[2]
        assert again["bulletin_id"] == "rac" and again["outcome"] == "played"
        assert again["started"] >= emergency["ended"] - 0.05
    else:
        assert len(records) == 2


@pytest.mark.slow
def test_schedule_survives_restart_and_misfires_follow_the_grace(tmp_path: Path, rtp: RtpReceiver) -> None:
    data = tmp_path / "data"
    cfg = config(tmp_path, {"loa": _rtp_zone(rtp)}, misfire_grace_s=60)
    now = time.time()
    store = Store(data / DB_FILE)
    # written by an earlier run that went down 10 minutes ago
    store.put(Bulletin.model_validate({"id": "recent", "text": SHORT_VI, "schedule": {"at": local_at(-20)}}),
              "coc", cursor=now - 600)
    store.put(Bulletin.model_validate({"id": "old", "text": SHORT_VI, "schedule": {"at": local_at(-300)}}),
              "coc", cursor=now - 600)
    store.put(Bulletin.model_validate({"id": "later", "text": SHORT_VI, "schedule": {"at": local_at(3600)}}),
              "coc", cursor=now - 600)
    store.close()

    async def first_run() -> list[dict]:
        async with running(cfg, data) as ctx:
            await async_wait_until(lambda: len(asruns(ctx)) >= 2, timeout=40, what="misfire decisions")
            return asruns(ctx)

    records = {r["bulletin_id"]: r for r in asyncio.run(first_run())}
    assert records["recent"]["outcome"] == "played"
    assert 15_000 < records["recent"]["lateness_ms"] < 60_000
    assert records["old"]["outcome"] == "skipped" and "misfire" in records["old"]["reason"]
    assert "later" not in records

    async def second_run() -> tuple[list[dict], list[str]]:
        async with running(cfg, data) as ctx:
            await asyncio.sleep(1.5)  # give a wrong re-airing the chance to happen
            store = Store(data / DB_FILE)
            try:
                ids = [s.bulletin.id for s in store.all()]
            finally:
                store.close()
            return asruns(ctx), ids

    again, ids = asyncio.run(second_run())
    assert again == [], "nothing aired or skipped twice after the restart"
    assert ids == ["later", "old", "recent"]


def test_broadcast_command_validates_and_answers(tmp_path: Path, rtp: RtpReceiver) -> None:
    cfg = config(tmp_path, {"loa": _rtp_zone(rtp)})

    async def scenario() -> None:
        async with running(cfg, tmp_path / "data") as ctx:
            h = ctx.commands["broadcast"]
            res = await h({"action": "create", "bulletin": {"id": "hop", "text": SHORT_VI,
                                                            "schedule": {"cron": "30 6 * * 1-5"}}})
            assert res["id"] == "hop" and len(res["next_airings"]) == 5
            with pytest.raises(CommandError, match="already exists"):
                await h({"action": "create", "bulletin": {"id": "hop", "text": "x", "schedule": {"cron": "0 7 * * *"}}})
            with pytest.raises(CommandError, match="schedule.cron: .*not a 5-field cron"):
                await h({"action": "update", "bulletin": {"id": "hop", "text": "x", "schedule": {"cron": "61 * * *"}}})
            with pytest.raises(CommandError, match="unknown zone 'nowhere'"):
                await h({"action": "update", "bulletin": {"id": "hop", "text": "x", "zones": ["nowhere"],
                                                          "schedule": {"cron": "0 7 * * *"}}})
            with pytest.raises(CommandError, match="text: too long"):
                await h({"action": "create", "bulletin": {"id": "big", "text": "a" * 1_048_576,
                                                          "schedule": {"at": local_at(60)}}})
            with pytest.raises(CommandError, match="text is empty"):
                await h({"action": "create", "bulletin": {"id": "empty", "text": " ", "schedule": {"at": local_at(9)}}})
            with pytest.raises(CommandError, match="action must be one of"):
                await h({"action": "explode"})
            res = await h({"action": "cancel", "id": "hop"})
            assert res == {"id": "hop", "cancelled": True}
            with pytest.raises(CommandError, match="no active bulletin"):
                await h({"action": "cancel", "id": "hop"})
            res = await h({"action": "play-now", "bulletin": {"id": "now", "text": "Xin chào; $(reboot)",
                                                              "chime": {"before": False}}})
            assert res["engine"] == "espeak" and res["zones"] == ["loa"]
            await async_wait_until(lambda: asruns(ctx, "played", "now"), timeout=20, what="play-now aired")
            assert ctx.counters["bad_command"] >= 5

    asyncio.run(scenario())


def test_invalid_bulletin_file_is_reported_and_the_accepted_version_kept(tmp_path: Path, rtp: RtpReceiver) -> None:
    cfg = config(tmp_path, {"loa": _rtp_zone(rtp)})
    bdir = tmp_path / "bulletins"

    async def scenario() -> None:
        async with running(cfg, tmp_path / "data") as ctx:
            write_bulletin(bdir, "tiem", {"title": "Tiêm chủng", "text": SHORT_VI,
                                          "schedule": {"times": ["07:00"], "start_date": "2026-12-01",
                                                       "end_date": "2026-12-05", "repeat": 2, "gap_s": 30}})
            state = tmp_path / "data" / "state.json"
            await async_wait_until(lambda: state.exists() and '"tiem"' in state.read_text(), timeout=10)
            write_bulletin(bdir, "tiem", {"text": SHORT_VI, "schedule": {"times": ["25:00"]}})
            (bdir / "rac.yaml").write_text("text: [unclosed\n")
            await async_wait_until(lambda: ctx.counters["bad_bulletin"] >= 2, timeout=10, what="file errors")
            store = Store(tmp_path / "data" / DB_FILE)
            try:
                kept = store.get("tiem")
            finally:
                store.close()
            assert kept is not None and kept.status == "active" and kept.bulletin.title == "Tiêm chủng"
            # the state file is written off the loop: it shows both errors once that write is done
            await async_wait_until(lambda: "tiem.yaml: schedule.times.0" in state.read_text()
                                   and "rac.yaml: YAML error" in state.read_text(), timeout=10,
                                   what="both file errors in state.json")
            (bdir / "tiem.yaml").unlink()
            await async_wait_until(lambda: _active(tmp_path / "data") == [], timeout=10,
                                   what="removed file cancels its bulletin")

    asyncio.run(scenario())
