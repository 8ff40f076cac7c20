"""Tracks across detector calls, line crossings counted once per object, and vehicles standing in stop zones.

A greedy IoU/centroid tracker is enough at a black spot: objects are few and the detector runs a few
times per second. Each track's foot point (bottom centre of its box) is what crosses lines and stands in zones.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drivers.camera.detectors import Box, Detection

if TYPE_CHECKING:  # only types: the worker process never imports pydantic (see plain.py)
    from drivers.camera.config import CountLine, TrafficConfig

Pt = tuple[float, float]


def iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = min(ax1, bx1) - max(a[0], b[0]), min(ay1, by1) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def foot(box: Box) -> Pt:
    return (box[0] + box[2] / 2.0, float(box[1] + box[3]))


def _cross(o: Pt, a: Pt, b: Pt) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def crossing(p0: Pt, p1: Pt, a: Pt, b: Pt) -> int:
    """+1 if the move p0→p1 crosses segment a→b from its left to its right (as seen on the picture), -1 back, 0 none."""
    # image y grows downwards: a positive cross product is a clockwise turn, i.e. the right-hand side.
    # A point exactly on the line counts as left, so stepping onto it and then off is one crossing, not none.
    s0, s1 = _cross(a, b, p0) > 0, _cross(a, b, p1) > 0
    if s0 == s1:
        return 0
    if _cross(p0, p1, a) * _cross(p0, p1, b) > 0:  # passes beside the segment, not through it
        return 0
    return 1 if s1 else -1


def inside(pt: Pt, poly: list[Pt]) -> bool:
    """Ray casting; poly in the same pixel units as pt."""
    x, y = pt
    hit = False
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]):
        if (y0 > y) != (y1 > y) and x < (x1 - x0) * (y - y0) / (y1 - y0) + x0:
            hit = not hit
    return hit


@dataclass
class Track:
    id: int
    label: str
    box: Box
    first_seen: float
    last_seen: float
    score: float
    prev_foot: Pt | None = None
    counted: set[str] = field(default_factory=set)
    still_since: dict[str, tuple[float, Pt]] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Crossing:
    line: str
    label: str
    direction: str
    track: int


@dataclass(frozen=True)
class Stopped:
    zone: str
    label: str
    track: int
    standing_s: float
    box: Box
    score: float


class Tracker:
    """Feed it each detector call's detections; it returns the crossings and stops they make."""

    def __init__(self, cfg: TrafficConfig, width: int, height: int) -> None:
        self.cfg = cfg
        self.size = (width, height)
        self.tracks: list[Track] = []
        self.ids = itertools.count(1)
        self.lines = [(ln, self._px(ln.points)) for ln in cfg.lines]
        self.zones = [(z, self._px(z.polygon)) for z in cfg.stop_zones]

    def _px(self, pts: list[tuple[float, float]]) -> list[Pt]:
        w, h = self.size
        return [(x * w, y * h) for x, y in pts]

    def _match(self, dets: list[Detection]) -> list[tuple[Track | None, Detection]]:
        """Greedy: best IoU first, then nearest foot point within the object's own size."""
        pairs: list[tuple[float, int, int]] = []
        for ti, t in enumerate(self.tracks):
            for di, d in enumerate(dets):
                if d.label != t.label:
                    continue
                overlap = iou(t.box, d.box)
                (fx, fy), (gx, gy) = foot(t.box), foot(d.box)
                reach = 1.5 * max(t.box[2], t.box[3], d.box[2], d.box[3])
                dist = math.hypot(fx - gx, fy - gy)
                if overlap > 0.1 or dist < reach:
                    pairs.append((overlap + (1.0 - min(dist / reach, 1.0)), ti, di))
        pairs.sort(reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        out: list[tuple[Track | None, Detection]] = []
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            out.append((self.tracks[ti], dets[di]))
        out += [(None, d) for di, d in enumerate(dets) if di not in used_d]
        return out

    def expire(self, mono: float, hold_s: float = 0.0) -> None:
        """Before matching, forget tracks not seen for track_ttl_s (or hold_s, the detector's period while objects
        stand, if longer): else the next object to come along (a car 30 s later, near where the last one left)
        would continue the old track, and its line would not count again."""
        hold = max(self.cfg.track_ttl_s, hold_s)
        self.tracks = [t for t in self.tracks if mono - t.last_seen <= hold]

    def update(self, dets: list[Detection], mono: float, hold_s: float = 0.0) -> tuple[list[Crossing], list[Stopped]]:
        crossings: list[Crossing] = []
        stops: list[Stopped] = []
        self.expire(mono, hold_s)
        for track, det in self._match(dets):
            if track is None:
                track = Track(next(self.ids), det.label, det.box, mono, mono, det.score)
                self.tracks.append(track)
            else:
                track.prev_foot = foot(track.box)
                track.box, track.last_seen, track.score = det.box, mono, det.score
            crossings += self._crossings(track)
            stops += self._stops(track, mono)
        self.tracks = [t for t in self.tracks if mono - t.last_seen < self.cfg.track_ttl_s]
        return crossings, stops

    def _crossings(self, t: Track) -> list[Crossing]:
        if t.prev_foot is None:
            return []
        out = []
        for line, (a, b) in self.lines:
            if line.name in t.counted or t.label not in line.classes:
                continue
            side = crossing(t.prev_foot, foot(t.box), a, b)
            if side:
                t.counted.add(line.name)
                out.append(Crossing(line.name, t.label, line.directions[0 if side > 0 else 1], t.id))
        return out

    def _stops(self, t: Track, mono: float) -> list[Stopped]:
        out = []
        here = foot(t.box)
        for zone, poly in self.zones:
            if t.label not in zone.classes or not inside(here, poly):
                t.still_since.pop(zone.name, None)
                continue
            since = t.still_since.get(zone.name)
            if since is None or math.dist(since[1], here) > zone.still_pct / 100.0 * self.size[0]:
                t.still_since[zone.name] = (mono, here)
                continue
            standing = mono - since[0]
            if standing >= zone.stopped_after_s and zone.name not in t.reported:
                t.reported.add(zone.name)
                out.append(Stopped(zone.name, t.label, t.id, round(standing, 1), t.box, t.score))
        return out

    def watching_stops(self) -> bool:
        """True while a tracked object stands in a stop zone: the detector must keep looking without motion."""
        return any(t.still_since for t in self.tracks)


def line_keys(lines: list[CountLine]) -> list[tuple[str, str, str]]:
    """Every (line, class, direction) a camera reports, so idle intervals report zeros."""
    return [(ln.name, c, d) for ln in lines for c in ln.classes for d in ln.directions]
