"""Modbus RTU on the wire: frame timing, register maps coalesced into reads, one request and its decoding."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pymodbus.client import ModbusSerialClient

from drivers.sensors.config import Register, SerialPort

MAX_REGISTERS_PER_READ = 125
REQUEST_BYTES = 8  # unit, function, address(2), count(2), crc(2)


# -- wire timing ---------------------------------------------------------------------------------------------

def char_bits(bytesize: int = 8, parity: str = "N", stopbits: float = 1) -> float:
    """Bits on the wire per character: start + data + parity + stop (8N1 = 10, 8E1 = 11)."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def gap_s(baud: int, bits: float) -> float:
    """The 3.5-character silent interval; fixed at 1.75 ms above 19200 baud (Modbus over serial line §2.5.1.1)."""
    return 0.00175 if baud > 19200 else 3.5 * bits / baud


def read_wire_s(count: int, baud: int, bits: float) -> float:
    """One read transaction: request + response frames, each followed by a silent interval."""
    chars = REQUEST_BYTES + 5 + 2 * count
    return chars * bits / baud + 2 * gap_s(baud, bits)


# -- register maps -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadBlock:
    """One request covering several registers of one table."""

    table: str
    address: int
    count: int
    registers: tuple[Register, ...]


def plan_reads(registers: list[Register], max_gap: int = 0, max_count: int = MAX_REGISTERS_PER_READ) -> list[ReadBlock]:
    """Coalesce registers that are contiguous (or within max_gap) into as few reads as possible."""
    blocks: list[ReadBlock] = []
    for table in ("holding", "input"):
        regs = sorted((r for r in registers if r.table == table), key=lambda r: r.address)
        start = end = -1
        members: list[Register] = []
        for r in regs:
            r_end = r.address + r.width
            if members and r.address - end <= max_gap and max(end, r_end) - start <= max_count:
                end = max(end, r_end)
                members.append(r)
                continue
            if members:
                blocks.append(ReadBlock(table, start, end - start, tuple(members)))
            start, end, members = r.address, r_end, [r]
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks


def decode_register(reg: Register, words: list[int]) -> float | int:
    """Raw 16-bit words -> scaled value (byte order within a word is always big-endian in Modbus)."""
    if reg.width == 2 and reg.word_order == "little":
        words = [words[1], words[0]]
    raw = struct.pack(f">{reg.width}H", *words)
    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}[reg.type]
    value = struct.unpack(fmt, raw)[0]
    if reg.scale != 1.0 or reg.offset != 0.0:
        value = round(value * reg.scale + reg.offset, 6)
    return value


def decode_block(block: ReadBlock, words: list[int]) -> list[tuple[Register, float | int]]:
    out = []
    for reg in block.registers:
        i = reg.address - block.address
        out.append((reg, decode_register(reg, words[i:i + reg.width])))
    return out


def make_client(port: SerialPort, timeout: float) -> ModbusSerialClient:
    """A pymodbus client with no retries of its own: retries are per device, decided here."""
    return ModbusSerialClient(port.port, baudrate=port.baud, bytesize=port.bytesize, parity=port.parity,
                              stopbits=port.stopbits, timeout=timeout, retries=0)


def read_block(client: ModbusSerialClient, block: ReadBlock, unit_id: int, timeout: float) -> Any:
    """One request; raises ModbusIOException on timeout, returns the (possibly exception) response."""
    client.comm_params.timeout_connect = timeout  # per-device timeout on a shared client
    fn = client.read_holding_registers if block.table == "holding" else client.read_input_registers
    return fn(block.address, count=block.count, device_id=unit_id)
