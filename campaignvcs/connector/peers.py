"""Which local user is on the other end of a loopback TCP connection (Linux).

TCP has no ``SO_PEERCRED``, but the kernel lists every socket of this network namespace
with its owner in ``/proc/net/tcp`` and ``/proc/net/tcp6``. The client's socket is the
row whose local address is our peer's address and whose remote address is ours; its
``uid`` column is the client's user. The connector serves keys and tunnels only when
that uid is its own, so another user on a shared login node gets nothing from it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Address = tuple[IP, int]


def can_check() -> bool:
    """True where the uid of a peer can be found (``/proc/net/tcp`` exists)."""
    return os.path.exists(TABLES[0])


def peer_uid(sock: socket.socket) -> int | None:
    """The uid owning the other end of connected loopback socket ``sock``, or None if unknown."""
    try:
        ours = _address(sock.getsockname())
        theirs = _address(sock.getpeername())
    except (OSError, ValueError):
        return None
    for table in TABLES:
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)  # header
                for line in f:
                    fields = line.split()
                    if len(fields) < 8:
                        continue
                    try:
                        if _decode(fields[1]) == theirs and _decode(fields[2]) == ours:
                            return int(fields[7])
                    except ValueError:
                        continue
        except OSError:
            continue
    return None


def same_user(sock: socket.socket) -> bool:
    """True if the peer of ``sock`` runs as this process's user."""
    return peer_uid(sock) == os.getuid()


def _address(addr: tuple) -> Address:
    ip = ipaddress.ip_address(addr[0].split("%")[0])
    return _unmap(ip), int(addr[1])


def _unmap(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _decode(field: str) -> Address:
    """``0100007F:7530`` (IPv4) or 32 hex digits + port (IPv6), as the kernel prints them.

    The kernel prints each 32-bit word of the address as a native-endian integer.
    """
    host, _, port = field.partition(":")
    raw = b"".join(struct.pack("=I", int(host[i : i + 8], 16)) for i in range(0, len(host), 8))
    ip = ipaddress.ip_address(raw)
    return _unmap(ip), int(port, 16)
