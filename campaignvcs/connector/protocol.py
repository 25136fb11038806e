"""The wire protocol ADIOS2 2.12 speaks with its connection manager on localhost:30000.

A client sends one ASCII string without terminator (``/get_key?id=...``,
``/run_service?group=H&service=S``, ``/connect_port?...``) and reads one response of
comma-separated ``key:value`` pairs; the server then closes the connection. Whitespace
and NUL bytes anywhere in the request are ignored, as in hpc-campaign's connector.
ADIOS2 throws on any ``msg`` other than ``no_error`` (for keys also ``cannot_find_key_id``,
which makes it skip the dataset), so the message strings below are part of the protocol.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

MAX_REQUEST = 2048
"""ADIOS2 and hpc-campaign both use 2048-byte buffers."""

# Messages, spelled exactly as hpc-campaign's connector sends them (ADIOS2 shows them).
NO_ERROR = "no_error"
INCORRECT_REQUEST_FORMAT = "incorrect_request_format"
MISSING_KEY_ID = "missing_key_id_in_request"
CANNOT_FIND_KEY_ID = "cannot_find_key_id"
MISSING_GROUP = "missing_group_in_request"
MISSING_SERVICE = "missing_service_in_request"
INCOMPLETE_SERVICE_DEFINITION = "incomplete_service_definition"
UNSUPPORTED_PROTOCOL = "unsupported_protocol"
UNSUPPORTED_AUTHENTICATION = "unsupported_authication_method"  # (sic) as hpc-campaign spells it
CANNOT_CONNECT_TO_REMOTE_SERVER = "cannot_connect_to_remote_server"
SERVICE_NOT_AVAILABLE = "service_not_available"
CANNOT_FIND_SERVICE_PORT = "cannot_find_service_port_on_remote"
CANNOT_FIND_LOCAL_PORT = "cannot_find_local_port"
CANNOT_START_FORWARD_SERVER = "cannot_start_forward_server"
REQUESTED_PORT_NOT_AVAILABLE = "requested_port_is_not_available"
MISSING_DESTINATION_HOST = "missing_destination_host_in_request"
MISSING_DESTINATION_PORT = "missing_destination_port_in_request"
NO_MATCHING_SERVICE = "no_matching_group_or_service_in_config_file"
MISSING_REMOTE_HOST = "missing_remote_host_in_request"
CANNOT_CONNECT_TO_REMOTE_HOST_PORT = "cannot_connect_to_remote_host_port"
PERMISSION_DENIED = "permission_denied"
"""Ours: a request from another user's process (ADIOS2 shows it as the error message)."""



def key_not_loaded(key_id: str) -> str:
    """Ours: the message for a key this connector does not hold (ADIOS2 shows it in its error).

    ``cannot_find_key_id`` makes ADIOS2 2.12.1 fail the whole open with an unrelated
    message ("basic_string: construction from null is not valid"); any other message it
    throws as "Error response from connection manager: <msg>". No commas (the separator).
    """
    safe = re.sub(r"[^0-9A-Za-z_-]", "", key_id)[:64]
    return f"key_{safe}_is_not_loaded_in_camp_connect"


_WHITESPACE_AND_NUL = re.compile(r"[\s\x00]+")


def parse_request(raw: bytes) -> tuple[str, dict[str, str]] | None:
    """``(path, query)`` of a request, first value of each parameter; None without a query string."""
    text = _WHITESPACE_AND_NUL.sub("", raw.decode("utf-8", "replace"))
    parts = urlsplit(text)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if v}
    if not parts.query:
        return None
    return parts.path, query


def response(**fields: object) -> bytes:
    """``key:value,key:value`` in the given order (e.g. ``port:28000,cookie:0x1,msg:no_error``)."""
    return ",".join(f"{k}:{v}" for k, v in fields.items()).encode("utf-8")


def port_error(msg: str, port: int = -1) -> bytes:
    """A tunnel request refused: ``port:-1,msg:<msg>``."""
    return response(port=port, msg=msg)


def key_reply(hex_key: str) -> bytes:
    """``key:<64 hex>,msg:no_error``."""
    return response(key=hex_key, msg=NO_ERROR)


def key_error(msg: str) -> bytes:
    """``key:0,msg:<msg>``."""
    return response(key=0, msg=msg)


def parse_service_line(line: str) -> dict[str, str] | None:
    """The first line a remote server prints, ``port:N;msg:no_error;cookie:0x...``, as a dict.

    None unless it holds both ``port:`` and ``msg:`` (what ``-report_port_selection`` prints).
    """
    text = line.replace(" ", "").replace("\r", "").replace("\n", "")
    if "port:" not in text or "msg:" not in text:
        return None
    out: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.partition(":")
        if sep:
            out[key] = value
    return out
