"""`service.instance.id` spelled as the `instance` label a Prometheus scrape of this process gets.

Prometheus names a scraped target `host:port`, the address it connected to. The Collector's
Prometheus exporter turns `service.instance.id` into the `instance` label of every series it
exposes, and OpenTelemetry's Prometheus compatibility rules map the two onto each other. When
the id is that same address, `up` from the direct scrape and every series that came through the
Collector carry one `instance`: several replicas behind one name stay apart, and each replica's
`up` joins its own metrics (dashboards' instance variable, alert labels).

Discovery by DNS (Compose's `dns_sd_configs`, a Kubernetes pod IP) scrapes the address the
process' host name resolves to, so a process bound to every interface names itself by that
address. A process bound to one address is scraped at that address. A port chosen by the kernel
(`APP_PORT=0`) is not known before the server starts: the SDK's random UUID stays then, as it does
whenever `OTEL_RESOURCE_ATTRIBUTES` sets `service.instance.id` itself.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})
"""Bind addresses meaning "every interface": no single address a scraper would use."""


def own_address() -> str | None:
    """The address this host's name resolves to (the container's address in Docker, whose
    /etc/hosts maps the container's host name to it), or None when it does not resolve.

    Resolves once, when the telemetry is built, before the server serves: through /etc/hosts
    it does not wait on the network."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def scrape_instance(host: str, port: int) -> str | None:
    """`host:port` as Prometheus writes the target a server bound to `host`:`port` is scraped
    at (IPv6 in brackets), or None when that address cannot be known in advance."""
    if port == 0:
        return None
    address = own_address() if host in WILDCARD_HOSTS else host
    if not address:
        return None
    try:
        is_v6 = ipaddress.ip_address(address).version == 6
    except ValueError:  # a host name
        is_v6 = False
    return f"[{address}]:{port}" if is_v6 else f"{address}:{port}"
