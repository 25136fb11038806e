"""hosts.yaml as the connector reads it: groups of ssh service entries, and aliases.

The file is ADIOS2's (``~/.config/hpc-campaign/hosts.yaml``); the connector only reads it.
:func:`parse_service` turns one ``<group>: <service>:`` entry into a :class:`ServiceDef`
and :meth:`ServiceDef.route` says how to reach its host (the ``port:`` of the entry is the
SSH port; ``user``, ``identity_file``, jump host and ProxyCommand are honoured too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaignvcs.connector.tunnel import Endpoint, Route

PROTOCOLS = ("ssh", "ssh_tunnel")


class ServiceConfigError(Exception):
    """A hosts.yaml service entry the connector cannot use; the message says which field."""


@dataclass(frozen=True)
class ServiceDef:
    """One ``<group>: <service>:`` entry of hosts.yaml, as the connector reads it."""

    group: str
    name: str
    host: str
    protocol: str
    authentication: str
    port: int = 22
    user: str | None = None
    serverpath: str = ""
    args: str = ""
    identity_file: str | None = None
    jumphost: str | None = None
    jumpport: int = 22
    jumpuser: str | None = None
    jumpidentity_file: str | None = None
    tunneltype: str = "permanent"
    local_port: int | None = None
    proxycommand: str | None = None

    def route(self, default_proxy: str | None) -> Route:
        """How to reach this service's host over SSH."""
        target = Endpoint(self.host, self.port, self.user, self.authentication, self.identity_file)
        jump = None
        if self.jumphost:
            jump_auth = "publickey" if self.jumpidentity_file or self.authentication == "publickey" \
                else self.authentication
            jump = Endpoint(self.jumphost, self.jumpport, self.jumpuser, jump_auth, self.jumpidentity_file)
        return Route(target, jump, self.proxycommand or default_proxy)


def _text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ServiceConfigError(f"'{key}' must be a single value")
    return str(value).strip()


def _port(entry: dict[str, Any], key: str, default: int | None) -> int | None:
    value = entry.get(key)
    if value is None:
        return default
    try:
        port = int(str(value))
    except ValueError:
        raise ServiceConfigError(f"'{key}' is not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise ServiceConfigError(f"'{key}' is not a port number: {value!r}")
    return port


def parse_service(group: str, name: str, entry: Any, need_server: bool = True) -> ServiceDef:
    """A :class:`ServiceDef` from a hosts.yaml entry; ServiceConfigError names what is missing."""
    if entry is None:
        raise ServiceConfigError(f"no service {name!r} under {group!r}")
    if not isinstance(entry, dict):
        raise ServiceConfigError(f"{group}/{name} is not a mapping of options")
    need = ["host", "protocol", "authentication"] + (["serverpath"] if need_server else [])
    missing = [k for k in need if not _text(entry, k)]
    if missing:
        raise ServiceConfigError("missing " + ", ".join(missing))
    return ServiceDef(
        group=group,
        name=name,
        host=_text(entry, "host") or "",
        protocol=_text(entry, "protocol") or "",
        authentication=_text(entry, "authentication") or "",
        port=_port(entry, "port", 22) or 22,
        user=_text(entry, "user") or None,
        serverpath=_text(entry, "serverpath") or "",
        args=_text(entry, "args") or "",
        identity_file=_text(entry, "identity_file") or None,
        jumphost=_text(entry, "jumphost") or None,
        jumpport=_port(entry, "jumpport", 22) or 22,
        jumpuser=_text(entry, "jumpuser") or None,
        jumpidentity_file=_text(entry, "jumpidentity_file") or None,
        tunneltype=_text(entry, "tunneltype") or "permanent",
        local_port=_port(entry, "local_port", None),
        proxycommand=_text(entry, "proxycommand") or None,
    )


class HostsConfig:
    """hosts.yaml as the connector uses it: groups of services, and aliases (``A: B``)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, group: str) -> str:
        """The group an alias names (one level, as ADIOS2 and hpc-campaign resolve it)."""
        value = self.doc.get(group)
        if isinstance(value, str) and isinstance(self.doc.get(value), dict):
            return value
        return group

    def entry(self, group: str, service: str) -> Any:
        """The raw options of ``group``/``service``, or None."""
        services = self.doc.get(group)
        if not isinstance(services, dict):
            return None
        return services.get(service)

    def ssh_services(self, groups: list[str] | None = None) -> list[tuple[str, str]]:
        """``(group, service)`` of every ssh entry, in file order (of ``groups`` only, if given).

        Aliases (``A: B``) are not listed themselves; naming one in ``groups`` lists its target's.
        """
        wanted = None if groups is None else [self.resolve(g) for g in groups]
        out = []
        for group, services in self.doc.items():
            if not isinstance(services, dict) or (wanted is not None and group not in wanted):
                continue
            for name, entry in services.items():
                if isinstance(entry, dict) and str(entry.get("protocol", "")).strip() in PROTOCOLS:
                    out.append((str(group), str(name)))
        return out
