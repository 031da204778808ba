"""Modbus/TCP: MBAP framing here, the PDU through pymodbus' own decoders."""

from __future__ import annotations

import logging
import struct
from typing import Any, Final

from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU

from millnet.errors import ProtocolError
from millnet.probe.model import DetailValue, Pdu

# pymodbus logs a warning for every PDU it cannot decode; the probe counts those instead
logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)

WRITES: Final = frozenset({5, 6, 15, 16, 22, 23})
READS: Final = frozenset({1, 2, 3, 4, 20, 24})
DIAGNOSTICS: Final = frozenset({7, 8, 11, 12})
MAX_ADU: Final = 260
#: MEI object ids of Read Device Identification (Modbus spec 6.21)
VENDOR, PRODUCT_CODE, REVISION, PRODUCT_NAME, MODEL_NAME = 0, 1, 2, 4, 5

_requests = DecodePDU(is_server=True)
_responses = DecodePDU(is_server=False)


def frame_length(data: bytes) -> int | None:
    if len(data) < 7:
        return None
    protocol, length = (int(v) for v in struct.unpack_from(">HH", data, 2))
    if protocol != 0:
        raise ProtocolError(f"modbus: protocol id {protocol} is not 0")
    if not 2 <= length <= MAX_ADU - 6:
        raise ProtocolError(f"modbus: MBAP length {length} out of 2..{MAX_ADU - 6}")
    return 6 + length


def decode(frame: bytes, from_client: bool, session: dict[str, Any]) -> list[Pdu]:
    unit, pdu_bytes = frame[6], frame[7:]
    function = pdu_bytes[0]
    pdu = (_requests if from_client else _responses).decode(pdu_bytes)
    if pdu is None:
        raise ProtocolError(f"modbus: undecodable {'request' if from_client else 'response'} "
                            f"with function code {function}")
    detail: dict[str, DetailValue] = {"unit": unit, "function": function & 0x7F}
    if isinstance(pdu, ExceptionResponse):
        detail["exception_code"] = pdu.exception_code
        return [Pdu("modbus", "exception", f"fc{function & 0x7F} exception", from_client,
                    detail)]
    _addressing(pdu, detail)
    action = _action(function, pdu)
    if pdu.sub_function_code >= 0:
        detail["sub_function"] = pdu.sub_function_code
    if action == "identify" and not from_client:
        detail.update(_identity(pdu))
    return [Pdu("modbus", action, f"fc{function} {type(pdu).__name__}", from_client, detail)]


def _action(function: int, pdu: ModbusPDU) -> str:
    if function in WRITES:
        return "write"
    if function in READS:
        return "read"
    if function in DIAGNOSTICS:
        return "diagnostic"
    if function == 17 or (function == 43 and pdu.sub_function_code == 14):
        return "identify"
    return "other"


def _addressing(pdu: ModbusPDU, detail: dict[str, DetailValue]) -> None:
    if pdu.function_code in WRITES or pdu.function_code in READS:
        detail["address"] = int(pdu.address)
        detail["count"] = max(int(pdu.count), len(pdu.registers or ()), len(pdu.bits or ()))


def _identity(pdu: ModbusPDU) -> dict[str, DetailValue]:
    info: dict[int, Any] = getattr(pdu, "information", None) or {}

    def text(key: int) -> str:
        value = info.get(key, b"")
        if isinstance(value, list):  # pymodbus keeps repeated objects as a list
            value = value[0] if value else b""
        raw = value if isinstance(value, bytes) else str(value).encode()
        return raw.decode("utf-8", "replace")[:64]

    found = {"vendor": text(VENDOR),
             "model": text(MODEL_NAME) or text(PRODUCT_NAME) or text(PRODUCT_CODE),
             "firmware": text(REVISION)}
    return {key: value for key, value in found.items() if value}
