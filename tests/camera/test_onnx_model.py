"""The ONNX person detector through cv2.dnn with a real model file: a tiny YOLOv8-shaped network the
test builds, whose 'person' score per 32-px cell is the cell's brightness — so where it fires is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from drivers.camera.config import DetectConfig  # noqa: E402
from drivers.camera.detectors import DetectorError, OnnxDetector, make_detector  # noqa: E402

SIZE, CELL = 320, 32


def brightness_yolo(path: Path) -> Path:
    n = SIZE // CELL
    centres = np.array([[j * CELL + CELL / 2, i * CELL + CELL / 2, CELL, CELL]
                        for i in range(n) for j in range(n)], np.float32).T.reshape(1, 4, n * n)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["grey"], axes=[1], keepdims=1),
         helper.make_node("AveragePool", ["grey"], ["cells"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
         helper.make_node("Reshape", ["cells", "shape"], ["scores"]),
         helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1)],
        "brightness_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, n * n])],
        [helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, n * n]),
         helper.make_tensor("boxes", TensorProto.FLOAT, list(centres.shape), centres.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_onnx_detector_loads_a_real_model_and_finds_the_object(tmp_path: Path) -> None:
    model = brightness_yolo(tmp_path / "tiny.onnx")
    det = OnnxDetector(DetectConfig(detector="onnx", model=model, input_size=SIZE, min_score=0.5))
    frame = np.zeros((360, 640, 3), np.uint8)
    assert det.detect(frame, []) == []
    frame[64:128, 320:384] = 255  # one 2x2-cell bright block in model pixels: (160..191, 32..63)
    found = det.detect(frame, [])
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert (x, y, w, h) == (320, 64, 64, 64) and found[0].score == pytest.approx(1.0)
    assert found[0].label == "person"


def test_onnx_detector_rejects_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    cfg = DetectConfig(detector="onnx", model=bad, input_size=SIZE)
    with pytest.raises(DetectorError, match="cannot load ONNX model"):
        OnnxDetector(cfg)
    det, warning = make_detector(cfg)  # the driver falls back to HOG and says why
    assert det.name == "hog" and warning is not None and "cannot load ONNX model" in warning
