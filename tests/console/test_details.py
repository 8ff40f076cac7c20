"""Drivers' health details and WAN link reasons: every template in the source tree has its Vietnamese line; the
console translates by it."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import jinja2
import markupsafe
import pytest

from agent.driver import health_text
from drivers.console.i18n import DETAILS, REASONS, detail, link_reason
from tests.support.source import parse_file

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("agent", "drivers")
REPORTERS = ("health", "set_state", "_set_state")  # ctx.health(state, template, **params);
# SupervisedDriver.set_state(state, template); Uplink._set_state(state, template, **params)


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


class _Finder(ast.NodeVisitor):
    """Every health report in one file: (line, template or None when not a literal, keyword names or None)."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str | None, set[str] | None]] = []
        self._params: list[set[str]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._params.append({a.arg for a in node.args.args + node.args.kwonlyargs})
        self.generic_visit(node)
        self._params.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if not (isinstance(node.func, ast.Attribute) and node.func.attr in REPORTERS):
            return
        arg = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "detail"), None)
        if arg is None:
            return
        if isinstance(arg, ast.Name) and self._params and arg.id in self._params[-1]:
            return  # a context forwarding the template it was given
        template = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        names: set[str] | None = {k.arg for k in node.keywords if k.arg not in (None, "detail")}
        if any(k.arg is None for k in node.keywords):
            names = None  # **mapping: its keys are checked where the mapping is built
        if len(node.args) > 2 and isinstance(node.args[2], ast.Dict):
            names = {k.value for k in node.args[2].keys if isinstance(k, ast.Constant)}
        self.found.append((node.lineno, template, names))


def _scan(finder_type: type, tops: tuple[str, ...]) -> list[tuple[str, str | None, set[str] | None]]:
    """(file:line, template, parameter names) of every call the finder type picks out of the source tree."""
    out = []
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            finder = finder_type()
            finder.visit(parse_file(path))
            out.extend((f"{path.relative_to(ROOT)}:{line}", t, n) for line, t, n in finder.found)
    return out


def _reports() -> list[tuple[str, str | None, set[str] | None]]:
    return _scan(_Finder, SOURCES)


def test_every_health_template_in_the_source_has_a_vietnamese_line() -> None:
    reports = _reports()
    templates = {t for _, t, _ in ((w, t, n) for w, t, n in reports) if t}
    # the scan must see the tree's reports, or it proves nothing
    assert {"{n} camera(s) online", "all WAN links are down", "on {link}", "{bulletins} bulletins, {zones} zones",
            "bulletin_dir {path}: {error}", "{error}"} <= templates, templates
    problems = []
    for where, template, names in reports:
        if template is None:
            problems.append(f"{where}: the detail is not a literal template (put free text in a parameter)")
            continue
        if not template:
            continue
        if template not in DETAILS:
            problems.append(f"{where}: no Vietnamese line for {template!r} in drivers/console/i18n.py DETAILS")
            continue
        if names is not None and names != _fields(template):
            problems.append(f"{where}: parameters {sorted(names)} are not the template's {sorted(_fields(template))}")
        if _fields(DETAILS[template]) != _fields(template):
            problems.append(f"{where}: the Vietnamese line of {template!r} has other fields")
    assert not problems, "\n".join(problems)


def test_no_vietnamese_line_is_left_without_a_template_using_it() -> None:
    used = {t for _, t, _ in _reports() if t}
    assert set(DETAILS) - used == set()


def test_lines_are_vietnamese_with_diacritics() -> None:
    for template, line in DETAILS.items():
        if _fields(line) == {line.strip("{}")}:
            continue
        assert line != template and any(ord(ch) > 127 for ch in line), (template, line)


def _doc(template: str, **params: object) -> dict[str, object]:
    return {"detail": health_text(template, params), "detail_template": template, "detail_params": params}


def test_detail_in_vietnamese_in_english_and_unknown_templates_fall_back_to_english() -> None:
    doc = _doc("{n} camera(s) online", n=3)
    assert detail("vi", doc) == "3 camera trực tuyến"
    assert detail("en", doc) == "3 camera(s) online"
    assert detail("vi", _doc("all WAN links are down")) == "tất cả đường WAN đều mất kết nối"
    assert detail("vi", _doc("on {link}", link="wan2")) == "đang dùng wan2"
    assert detail("vi", _doc("a template from a newer driver {x}", x=1)) == "a template from a newer driver 1"
    # a status.json from before templates, and damaged ones, show the English line
    assert detail("vi", {"detail": "on wan1"}) == "on wan1"
    assert detail("vi", {"detail": "x", "detail_template": "on {link}", "detail_params": {}}) == "x"
    assert detail("vi", {"detail": "x", "detail_template": "on {link}", "detail_params": "junk"}) == "x"
    assert detail("vi", {"detail": "x", "detail_template": ["on {link}"], "detail_params": {}}) == "x"
    assert detail("vi", {}) == ""


class _ReasonFinder(ast.NodeVisitor):
    """Every link reason in one file: `reason(template, **params)` (drivers/network/linkjudge.py)."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str | None, set[str] | None]] = []

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if not (isinstance(node.func, ast.Name) and node.func.id == "reason"):
            return
        arg = node.args[0] if node.args else None
        template = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        names = None if any(k.arg is None for k in node.keywords) else {str(k.arg) for k in node.keywords}
        self.found.append((node.lineno, template, names))


def _reasons() -> list[tuple[str, str | None, set[str] | None]]:
    return _scan(_ReasonFinder, ("drivers",))


def test_every_link_reason_template_has_a_vietnamese_line() -> None:
    reasons = _reasons()
    templates = {t for _, t, _ in reasons if t}
    assert {"starting", "answering", "degraded on {bad}/{targets} targets: {measured}"} <= templates, templates
    problems = []
    for where, template, names in reasons:
        if template is None:
            problems.append(f"{where}: the reason is not a literal template (put free text in a parameter)")
        elif template not in REASONS:
            problems.append(f"{where}: no Vietnamese line for {template!r} in drivers/console/i18n.py REASONS")
        elif names is None or names != _fields(template):
            problems.append(f"{where}: parameters {names} are not the template's {sorted(_fields(template))}")
        elif _fields(REASONS[template]) != _fields(template):
            problems.append(f"{where}: the Vietnamese line of {template!r} has other fields")
    assert not problems, "\n".join(problems)
    assert set(REASONS) - templates == set(), "Vietnamese lines no reason uses"
    for template, line in REASONS.items():
        assert line != template and any(ord(ch) > 127 for ch in line), (template, line)


def test_link_reason_in_vietnamese_in_english_and_old_or_damaged_rows_in_english() -> None:
    row = {"reason": "healthy on 3/3 targets over 10s (loss <= 0.0%)",
           "reason_template": "healthy on {good}/{targets} targets over {span_s}s (loss <= {worst_loss_pct}%)",
           "reason_params": {"good": 3, "targets": 3, "span_s": 10, "worst_loss_pct": 0.0}}
    assert link_reason("vi", row) == "phản hồi tốt trên 3/3 địa chỉ kiểm tra trong 10 giây (mất gói ≤ 0.0%)"
    assert link_reason("en", row) == row["reason"]
    assert link_reason("vi", {"reason": "starting"}) == "starting"  # a links.json from before templates
    assert link_reason("vi", {**row, "reason_params": {}}) == row["reason"]
    assert link_reason("vi", {**row, "reason_template": "from a newer driver"}) == row["reason"]
    assert link_reason("vi", {}) == ""


HOSTILE = ["<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "{n}", "{0.__class__}"]


@pytest.mark.parametrize("name", HOSTILE)
def test_free_text_parameters_stay_as_they_are_and_are_escaped(name: str) -> None:
    doc = _doc("offline: {cameras}", cameras=name)
    assert detail("vi", doc) == f"mất kết nối: {name}"
    env = jinja2.Environment(autoescape=True)
    html = env.from_string("<td>{{ detail(d) }}</td>").render(detail=lambda d: detail("vi", d), d=doc)
    assert "<script" not in html and "<img" not in html
    assert html == f"<td>mất kết nối: {markupsafe.escape(name)}</td>"


def test_health_text_never_raises_on_a_mismatch() -> None:
    assert health_text("on {link}", {"other": 1}) == "on {link} {'other': 1}"
    assert health_text("on {link}", {}) == "on {link}"
    assert health_text("{n:d} x", {"n": "a"}).startswith("{n:d} x")
