"""OPC UA binary (opc.tcp): the 8-byte transport header here, bodies through asyncua's own
binary decoders (``asyncua.ua.ua_binary``). MSG bodies are read only on channels opened with the
None security policy (or seen mid-stream): signed-and-encrypted channels show their service
types to no one, which the PDU says."""

from __future__ import annotations

import struct
from typing import Any, Final
from urllib.parse import urlparse

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from asyncua.ua.object_ids import ObjectIdNames
from asyncua.ua.uaerrors import UaError

from millnet.errors import ProtocolError
from millnet.probe.model import DetailValue, Pdu

TYPES: Final = frozenset({b"HEL", b"ACK", b"OPN", b"MSG", b"CLO", b"ERR", b"RHE"})
MAX_CHUNK: Final = 16 << 20
WRITES: Final = frozenset({"WriteRequest", "CallRequest", "AddNodesRequest", "DeleteNodesRequest",
                           "AddReferencesRequest", "DeleteReferencesRequest",
                           "HistoryUpdateRequest"})
READS: Final = frozenset({"ReadRequest", "BrowseRequest", "BrowseNextRequest", "HistoryReadRequest",
                          "TranslateBrowsePathsToNodeIdsRequest", "QueryFirstRequest",
                          "RegisterNodesRequest"})
SUBSCRIBES: Final = frozenset({"CreateSubscriptionRequest", "CreateMonitoredItemsRequest",
                               "ModifySubscriptionRequest", "PublishRequest",
                               "SetPublishingModeRequest"})
SESSIONS: Final = frozenset({"CreateSessionRequest", "ActivateSessionRequest",
                             "CloseSessionRequest", "CloseSecureChannelRequest"})
IDENTIFY: Final = frozenset({"GetEndpointsRequest", "FindServersRequest"})
#: Responses that carry the server's ApplicationDescription
DESCRIBING: Final = frozenset({"GetEndpointsResponse", "FindServersResponse",
                               "CreateSessionResponse"})
#: Everything asyncua's decoders raise on bytes that do not fit the type they decode
DECODE_ERRORS: Final = (UaError, struct.error, ValueError, IndexError, KeyError, TypeError,
                        AttributeError, NotImplementedError, UnicodeDecodeError, OverflowError)


def frame_length(data: bytes) -> int | None:
    if len(data) < 8:
        return None
    if data[:3] not in TYPES or data[3:4] not in (b"F", b"C", b"A"):
        raise ProtocolError(f"opcua: message header {data[:4]!r} is not an OPC UA chunk")
    size = int(struct.unpack_from("<I", data, 4)[0])
    if not 8 <= size <= MAX_CHUNK:
        raise ProtocolError(f"opcua: chunk size {size} out of 8..{MAX_CHUNK}")
    return size


def decode(frame: bytes, from_client: bool, session: dict[str, Any]) -> list[Pdu]:
    kind = frame[:3].decode()
    body = Buffer(frame, 8)
    try:
        return [_decode(frame, body, from_client, session)]
    except DECODE_ERRORS as exc:
        raise ProtocolError(f"opcua: {kind} body does not decode ({exc.__class__.__name__})") \
            from exc


def _decode(frame: bytes, body: Buffer, from_client: bool, session: dict[str, Any]) -> Pdu:
    kind = frame[:3].decode()
    if kind == "HEL":
        hello = ua_binary.struct_from_binary(ua.Hello, body)
        return Pdu("opcua", "session", "HEL", from_client,
                   {"endpoint_url": str(hello.EndpointUrl or "")[:200]})
    if kind == "ERR":
        error = ua_binary.struct_from_binary(ua.ErrorMessage, body)
        return Pdu("opcua", "exception", "ERR", from_client,
                   {"status": int(error.Error.value), "reason": str(error.Reason or "")[:200]})
    if kind == "OPN":
        body.read(4)  # secure channel id
        header = ua_binary.struct_from_binary(ua.AsymmetricAlgorithmHeader, body)
        policy = str(header.SecurityPolicyURI or "")
        session["opcua_secured"] = not policy.endswith("#None")
        return Pdu("opcua", "session", "OPN", from_client,
                   {"security_policy": policy.rpartition("#")[2][:64]})
    if kind in ("MSG", "CLO"):
        return _message(frame, body, from_client, session)
    return Pdu("opcua", "response" if kind == "ACK" else "other", kind, from_client)


def _message(frame: bytes, body: Buffer, from_client: bool, session: dict[str, Any]) -> Pdu:
    kind, chunk = frame[:3].decode(), frame[3:4]
    continued_key = f"opcua_continued_{from_client}"
    continuation = session.get(continued_key, False)
    session[continued_key] = chunk == b"C"
    if session.get("opcua_secured"):
        return Pdu("opcua", "other", f"{kind} (secured)", from_client)
    if continuation:  # a later chunk of a long message carries no type id
        return Pdu("opcua", "other", f"{kind} (continuation)", from_client)
    body.read(16)  # channel id, token id, sequence header
    start = body.cur_pos
    type_id = ua_binary.nodeid_from_binary(body)
    if type_id.NamespaceIndex != 0 or not isinstance(type_id.Identifier, int):
        raise ProtocolError(f"opcua: {kind} type id {type_id} is not a standard service")
    name = ObjectIdNames.get(type_id.Identifier, "").removesuffix("_Encoding_DefaultBinary")
    if not name.endswith(("Request", "Response", "ServiceFault")):
        raise ProtocolError(f"opcua: {kind} type id {type_id.Identifier} is not a service")
    detail: dict[str, DetailValue] = {"service": name}
    if name in DESCRIBING and chunk == b"F":
        detail.update(_application(name, Buffer(frame, start)))
    return Pdu("opcua", _action(name), name, from_client, detail)


def _action(name: str) -> str:
    if name in WRITES:
        return "write"
    for names, action in ((READS, "read"), (SUBSCRIBES, "subscribe"), (SESSIONS, "session"),
                          (IDENTIFY, "identify")):
        if name in names:
            return action
    if name in DESCRIBING:
        return "identify"
    if name == "ServiceFault":
        return "exception"
    return "response" if name.endswith("Response") else "other"


def _application(name: str, body: Buffer) -> dict[str, DetailValue]:
    """Vendor and product of the server from the ApplicationDescription it sends back."""
    if name == "GetEndpointsResponse":
        endpoints = ua_binary.struct_from_binary(ua.GetEndpointsResponse, body).Endpoints
        apps = [endpoint.Server for endpoint in endpoints or ()]
    elif name == "CreateSessionResponse":
        result = ua_binary.struct_from_binary(ua.CreateSessionResponse, body).Parameters
        apps = [endpoint.Server for endpoint in result.ServerEndpoints or ()]
    else:
        apps = list(ua_binary.struct_from_binary(ua.FindServersResponse, body).Servers or ())
    if not apps:
        return {}
    app = apps[0]
    product_uri = str(app.ProductUri or "")
    vendor = urlparse(product_uri).netloc or product_uri.removeprefix("urn:").partition(":")[0]
    found = {"vendor": vendor[:64], "model": str(app.ApplicationName.Text or "")[:64],
             "application_uri": str(app.ApplicationUri or "")[:200]}
    return {key: value for key, value in found.items() if value}
