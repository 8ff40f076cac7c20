"""The `cameras` read command: each camera's state and the last event it raised, for a COC dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.driver import Context, Emittable, Event
from agent.paging import page_of, result_budget
from agent.payloads import event_dict
from drivers.camera.api import camera_of

if TYPE_CHECKING:
    from drivers.camera.camera import Camera


class LastEvents:
    """Wraps the driver's context: every event a camera emits is kept as that camera's last, then emitted."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.last: dict[str, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def emit(self, *items: Emittable) -> bool:
        for item in items:
            if isinstance(item, Event) and item.kind != "clip_upload":
                camera = camera_of(item.data)
                if camera is not None:
                    ev = event_dict(item)
                    self.last[camera] = {k: ev[k] for k in ("id", "ts", "kind", "severity")}
        return await self._ctx.emit(*items)


class CameraReads:
    """`cameras` {page, limit}: one page of cameras by name with state and last event."""

    def __init__(self, cameras: dict[str, Camera], events: LastEvents) -> None:
        self.cameras = cameras
        self.events = events

    async def handle(self, args: dict[str, Any]) -> dict[str, Any]:
        items = [{"name": name, **cam.state(), "last_event": self.events.last.get(name)}
                 for name, cam in sorted(self.cameras.items())]
        return page_of(items, int(args.get("page", 0)), int(args.get("limit", 50)),
                       result_budget(self.events.max_message_bytes))
