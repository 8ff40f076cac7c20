"""What a config push sends each site: a whole file per site, or one patch with per-site values put in
(`${site.KEY}` from a values file, `${site.id}` the site id). Every problem is found before anything is sent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from agent.fleet.config import FleetError

PLACEHOLDER = re.compile(r"\$\{site\.([A-Za-z0-9_]+)\}")
PUSHED_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def read_text(path: Path, what: str) -> str:
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetError(f"{what} {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(read_text(path, what))
    except yaml.YAMLError as exc:
        raise FleetError(f"{what} {path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def pairs(items: list[str], what: str) -> dict[str, str]:
    """`A=B` arguments as a mapping; a malformed or repeated one is a usage error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise FleetError(f"{what}: expected NAME=FILE, got {item!r}")
        if key in out:
            raise FleetError(f"{what}: {key} given twice")
        out[key] = value
    return out


def whole_files(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`--file SITE=FILE`: each file must be YAML whose site.site_id is that site (a file sent to the wrong
    box would rename it)."""
    out = {}
    for site, name in files.items():
        text = read_text(Path(name), "config")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FleetError(f"config {name}: not valid YAML: {str(exc).splitlines()[0]}") from None
        own = data.get("site", {}).get("site_id") if isinstance(data, dict) and isinstance(data.get("site"), dict) \
            else None
        if str(own) != site:
            raise FleetError(f"config {name}: site.site_id is {own!r}, not {site!r}")
        out[site] = {"config": text}
    return out


def substitute(node: Any, values: dict[str, Any], site: str) -> Any:
    """The patch with `${site.KEY}` filled in: a string that is only a placeholder takes the value's type."""
    if isinstance(node, dict):
        return {k: substitute(v, values, site) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, values, site) for v in node]
    if not isinstance(node, str):
        return node

    def value(key: str) -> Any:
        if key == "id":
            return site
        if key not in values:
            raise FleetError(f"values: site {site} has no {key!r} (used as ${{site.{key}}} in the patch)")
        return values[key]

    whole = PLACEHOLDER.fullmatch(node)
    if whole:
        return value(whole.group(1))
    return PLACEHOLDER.sub(lambda m: str(value(m.group(1))), node)


def patches(patch_file: Path, values_file: Path | None, sites: list[str]) -> dict[str, dict[str, Any]]:
    """`--patch P [--values V]`: the patch (top-level sections, each a mapping or null) for each site."""
    patch = read_yaml(patch_file, "patch")
    if not isinstance(patch, dict) or not patch:
        raise FleetError(f"patch {patch_file}: must be a mapping of sections to replace (null removes one)")
    bad = [k for k, v in patch.items() if not isinstance(k, str) or not (v is None or isinstance(v, dict))]
    if bad:
        raise FleetError(f"patch {patch_file}: section {bad[0]!r} must be a mapping or null")
    values: dict[str, Any] = {}
    if values_file is not None:
        values = read_yaml(values_file, "values") or {}
        if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
            raise FleetError(f"values {values_file}: must map each site id to a mapping of values")
        values = {str(k): v for k, v in values.items()}
    out = {}
    for site in sites:
        filled = substitute(patch, values.get(site, {}), site)
        own = (filled.get("site") or {}).get("site_id", site)
        if str(own) != site:
            raise FleetError(f"patch for {site}: site.site_id would become {own!r}")
        out[site] = {"patch": filled}
    return out


def attachments(items: list[str], sites: list[str]) -> dict[str, dict[str, str]]:
    """`--attach NAME=FILE`: files written 0600 beside the box's agent.yaml under pushed/NAME; FILE may hold
    `${site.id}` for a file per site (a camera password)."""
    named = pairs(items, "--attach")
    bad = [n for n in named if not PUSHED_NAME.fullmatch(n)]
    if bad:
        raise FleetError(f"--attach: {bad[0]!r} is not a file name ([A-Za-z0-9_.-], at most 64)")
    return {site: {n: read_text(Path(f.replace("${site.id}", site)), "attachment") for n, f in named.items()}
            for site in sites}
