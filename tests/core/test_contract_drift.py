"""The README's MQTT contract against the code's (agent/topics.py, agent/command_args.py): a test fails when the
documents drift from the wire. The wire itself is checked against agent/topics.py in test_coc_contract.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from agent.command_args import all_commands
from agent.topics import TOPICS, Birth, Status, write_schemas
from tests.support.agentproc import ROOT

SECTION = re.compile(r"^## MQTT contract with the COC\n(.*?)^## ", re.S | re.M)
ROW = re.compile(r"^\| `\.\.\./([^`]+)` \| (\d) \| (yes|no) \| (.*) \|$", re.M)


def contract_text() -> str:
    found = SECTION.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "README has no MQTT contract section"
    return found.group(1)


def top_keys(payload: str) -> set[str]:
    """The top-level keys of the first {...} the README gives for a payload."""
    start = payload.index("{")
    depth, token, keys = 0, "", []
    for ch in payload[start + 1:]:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                keys.append(token)
                break
            depth -= 1
        elif ch == "," and depth == 0:
            keys.append(token)
            token = ""
            continue
        if depth == 0 and ch not in "{[]}":
            token += ch
    names = {k.split(":")[0].strip().rstrip("?") for k in keys}
    return {n for n in names if n and not n.startswith("...")}


def fields(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def test_readme_topic_table_is_the_codes() -> None:
    rows = {m.group(1): m.groups()[1:] for m in ROW.finditer(contract_text())}
    assert set(rows) == {t.pattern for t in TOPICS}
    for topic in TOPICS:
        qos, retained, payload = rows[topic.pattern]
        assert (int(qos), retained == "yes") == (topic.qos, topic.retained), topic.pattern
        if topic.payload is None:
            assert "bytes" in payload, topic.pattern
            continue
        model = Birth if topic.payload is Status else topic.payload
        assert top_keys(payload) == fields(model), topic.pattern


def test_readme_names_every_command() -> None:
    text = contract_text()
    missing = [name for name in all_commands() if not re.search(f"`{re.escape(name)}[` ]", text)]
    assert not missing, f"commands the README's MQTT section does not name: {missing}"


def test_committed_topic_schemas_are_the_generated_ones(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "agent.cli", "schema", "--topics", str(tmp_path)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout.split()
    assert len(out) == len(TOPICS)
    committed = ROOT / "schemas" / "topics"
    assert sorted(p.name for p in committed.glob("*.json")) == sorted(Path(p).name for p in out)
    for path in map(Path, out):
        assert json.loads(path.read_text()) == json.loads((committed / path.name).read_text()), path.name
    assert write_schemas(tmp_path / "again")  # the function the command runs is what the repository keeps


def test_the_broadcast_schema_takes_every_action_the_family_has() -> None:
    """A new action added to the family's face but not to its command schema would be refused by the router."""
    from typing import get_args

    from drivers.broadcast import api
    from drivers.broadcast.command_args import BroadcastArgs

    assert set(get_args(BroadcastArgs.model_fields["action"].annotation)) == set(api.ACTIONS)
