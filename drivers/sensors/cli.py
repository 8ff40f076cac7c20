"""`commune-agent sensors decode|scan-modbus`: for technicians testing a mapping or finding units on a bus."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, get_args

from drivers.sensors.config import LINE_FORMATS, FormatSpec, PayloadFormat


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("sensors", help="farm sensors: test payload mappings, scan a Modbus bus")
    sub = parser.add_subparsers(dest="sensors_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser("decode", help="decode a payload read on stdin and print the readings",
                       description="Reads one payload (JSON formats) or one payload per line (line formats) on "
                                   "stdin. Use --use to take format and field mappings from the config.")
    p.add_argument("--format", choices=get_args(PayloadFormat), help="payload format")
    p.add_argument("--use", metavar="NAME", help="take format and fields from the config: a serial source name "
                                                 "or an MQTT topic filter exactly as written there")
    p.add_argument("--topic", default="", help="MQTT topic the payload came on (device naming, number names)")
    p.add_argument("--field", action="append", default=[], metavar="SOURCE[=NAME]",
                   help="map a field (dotted JSON path, key, column or group); repeatable")
    p.add_argument("--name", help="number format: reading name")
    p.add_argument("--unit", help="number format: unit")
    p.add_argument("--columns", help="csv: comma-separated column names")
    p.add_argument("--delimiter", default=",", help="csv: delimiter")
    p.add_argument("--pattern", help="regex: pattern with named groups")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("scan-modbus", help="list the unit ids that answer on a Modbus RTU bus",
                       description="Stop the agent first (the port can have one user). Asks every unit id for one "
                                   "register; an exception answer also proves a unit is there.")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/serial/by-id/usb-FTDI_...")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--bytesize", type=int, choices=[7, 8], default=8)
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    p.add_argument("--first", type=int, default=1, help="first unit id (default 1)")
    p.add_argument("--last", type=int, default=247, help="last unit id (default 247)")
    p.add_argument("--address", type=int, default=0, help="register to ask for (default 0)")
    p.add_argument("--table", choices=["holding", "input"], default="holding")
    p.add_argument("--timeout", type=float, default=0.2, help="seconds to wait per unit (default 0.2)")
    p.set_defaults(func=cmd_scan_modbus)


def _spec_from_config(args: argparse.Namespace) -> tuple[FormatSpec, str, str | None, str | None] | None:
    """(spec, source name, topic filter, device template) of the config entry --use names."""
    from agent.config import load_or_exit

    cfg = load_or_exit(args.config)
    section = getattr(cfg, "sensors", None)
    if section is None:
        print("decode: the config has no sensors section", file=sys.stderr)
        return None
    for s in section.serial:
        if s.name == args.use:
            return s, s.name, None, s.device or s.name
    for m in section.mqtt:
        for t in m.topics:
            if t.filter == args.use:
                return t, m.name, t.filter, t.device
    names = [s.name for s in section.serial] + [t.filter for m in section.mqtt for t in m.topics]
    print(f"decode: no serial source or MQTT topic filter {args.use!r} in the config "
          f"(have: {', '.join(names) or 'none'})", file=sys.stderr)
    return None


def _spec_from_args(args: argparse.Namespace) -> FormatSpec | None:
    from pydantic import ValidationError

    fields = []
    for f in args.field:
        source, _, name = f.partition("=")
        fields.append({"source": source, **({"name": name} if name else {})})
    data: dict[str, Any] = {"format": args.format, "fields": fields, "reading": args.name, "unit": args.unit,
                            "delimiter": args.delimiter, "pattern": args.pattern,
                            "columns": [c.strip() for c in args.columns.split(",")] if args.columns else []}
    try:
        return FormatSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "options"
            print(f"decode: {where}: {str(err['msg']).removeprefix('Value error, ')}", file=sys.stderr)
        return None


def cmd_decode(args: argparse.Namespace) -> int:
    from drivers.sensors.formats import DecodeError, Decoder
    from drivers.sensors.sources.mqtt import device_name

    if not args.format and not args.use:
        print("decode: give --format FORMAT or --use NAME", file=sys.stderr)
        return 2
    source = "cli"
    spec: FormatSpec
    if args.use:
        found = _spec_from_config(args)
        if found is None:
            return 2
        spec, source, filter_, template = found
        if args.format and args.format != spec.format:
            spec = spec.model_copy(update={"format": args.format})
        if filter_ is not None:
            device = device_name(filter_, args.topic, template) if args.topic else filter_
        else:
            device = template or source
    else:
        adhoc = _spec_from_args(args)
        if adhoc is None:
            return 2
        spec, device = adhoc, args.topic or "cli"
    decoder = Decoder(spec)
    data = sys.stdin.buffer.read()
    payloads = [ln.rstrip(b"\r") for ln in data.split(b"\n") if ln.strip()] if spec.format in LINE_FORMATS \
        and spec.format != "json" else [data]
    failed = 0
    now = time.time()
    for i, payload in enumerate(payloads, 1):
        where = f"line {i}" if len(payloads) > 1 else "payload"
        try:
            result = decoder.decode(payload, args.topic)
        except DecodeError as exc:
            print(f"bad {where}: {exc}", file=sys.stderr)
            failed += 1
            continue
        for problem in result.problems:
            print(f"warning {where}: {problem}", file=sys.stderr)
        for name, value, unit in result.readings:
            tags = {"source": source, "device": device}
            if args.json:
                print(json.dumps({"name": name, "value": value, "unit": unit, "ts": now, "tags": tags},
                                 ensure_ascii=False))
            else:
                print(f"{name} = {value}{' ' + unit if unit else ''}  (device={device})")
        if not result.readings:
            print(f"{where}: no readings", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_scan_modbus(args: argparse.Namespace) -> int:
    from pymodbus.exceptions import ConnectionException, ModbusException

    from drivers.sensors.config import SerialPort
    from drivers.sensors.modbus_rtu import ReadBlock, make_client, read_block

    port = SerialPort(port=args.port, baud=args.baud, parity=args.parity, bytesize=args.bytesize,
                      stopbits=args.stopbits)
    client = make_client(port, args.timeout)
    if not client.connect():
        print(f"scan-modbus: cannot open {args.port} (missing, no permission, or in use by the agent?)",
              file=sys.stderr)
        return 2
    block = ReadBlock(args.table, args.address, 1, ())
    found = []
    try:
        for unit in range(max(1, args.first), min(247, args.last) + 1):
            try:
                resp = read_block(client, block, unit, args.timeout)
            except ConnectionException as exc:
                print(f"scan-modbus: port failed: {exc}", file=sys.stderr)
                return 2
            except ModbusException:
                continue
            found.append(unit)
            if resp.isError():
                print(f"unit {unit}: answers (exception {getattr(resp, 'exception_code', '?')} for "
                      f"{args.table} register {args.address})", flush=True)
            else:
                print(f"unit {unit}: answers ({args.table} register {args.address} = {resp.registers[0]})",
                      flush=True)
    finally:
        client.close()
    print(f"answering unit ids: {' '.join(map(str, found))}" if found else "no unit answered")
    return 0 if found else 1
