"""OpenCV/FFmpeg capture over RTSP/TCP with open and read timeouts, and a file reader for `analyze`.

grab() demuxes and decodes every frame (H.264 needs them all); retrieve() converts to BGR, which is
the costly step we only pay at detect fps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import cv2
import numpy as np

# TCP: UDP RTP over a busy LAN or Wi-Fi bridge drops packets and smears frames; 1 decode thread
# is plenty for a substream and keeps a 2-core box responsive.
FFMPEG_OPTIONS = "rtsp_transport;tcp|threads;1|analyzeduration;500000|probesize;65536"


class RtspCapture:
    """One connection: make a new one after any failure (a VideoCapture does not recover a restarted server)."""

    def __init__(self, url: str, open_timeout_s: float, read_timeout_s: float) -> None:
        self.url = url
        self.open_timeout_ms = int(open_timeout_s * 1000)
        self.read_timeout_ms = int(read_timeout_s * 1000)
        self.cap: cv2.VideoCapture | None = None
        self.buf: np.ndarray | None = None

    def open(self) -> bool:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = FFMPEG_OPTIONS
        # one decoding thread: OpenCV otherwise gives FFmpeg frame threads of its own (each with its own
        # reference pictures, ~10 MB more per 720p camera) whatever the options above say
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                  self.read_timeout_ms, cv2.CAP_PROP_N_THREADS, 1]
        self.cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        return bool(self.cap.isOpened())

    @property
    def size(self) -> tuple[int, int]:
        assert self.cap is not None
        return int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def grab(self) -> bool:
        return self.cap is not None and bool(self.cap.grab())

    def stream_s(self) -> float:
        """The last grabbed frame's stream time in seconds (0 when the stream gives none)."""
        return float(self.cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0 if self.cap is not None else 0.0

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame in BGR, written into the same array each time (no 2.7 MB allocation per 720p frame):
        whoever keeps a frame past the next retrieve keeps a copy."""
        if self.cap is None:
            return None
        ok, frame = self.cap.retrieve(self.buf) if self.buf is not None else self.cap.retrieve()
        if not ok or frame is None:
            return None
        self.buf = frame
        return frame

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def file_frames(path: str, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(media time s, BGR frame) sampled at fps from a video file, decoding only the frames kept."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise OSError(f"cannot open video {path}")
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    interval = 1.0 / fps
    next_t = 0.0
    index = 0
    try:
        while cap.grab():
            t = index / src_fps
            index += 1
            if t + 1e-6 < next_t:
                continue
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                continue
            next_t += interval
            yield t, frame
    finally:
        cap.release()
