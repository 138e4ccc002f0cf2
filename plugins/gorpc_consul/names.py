"""Names gorpc uses in Consul: KV keys, agent service ids, and DNS-safe service names."""

from __future__ import annotations

import hashlib
import re

from gorpc.address import TcpAddress, parse_address

MAX_LABEL = 63  # DNS label limit
_NOT_DNS_SAFE = re.compile(r"[^a-z0-9]+")


def dns_label(service: str) -> str:
    """The name a service is registered under in Consul's catalog, and asked for over DNS.

    `helloworld.Greeter` -> `helloworld-greeter`: DNS labels allow letters, digits and hyphens,
    and a dot would split the name into two labels. Names too long for a label keep a hash suffix.
    """
    label = _NOT_DNS_SAFE.sub("-", service.lower()).strip("-")
    if len(label) > MAX_LABEL or not label:
        digest = hashlib.blake2b(service.encode(), digest_size=4).hexdigest()
        label = f"{label[: MAX_LABEL - 9].rstrip('-')}-{digest}".lstrip("-")
    return label


def service_prefix(prefix: str, service: str) -> str:
    """The KV folder holding a service's instances; the trailing slash keeps `a.B` from matching `a.B2`."""
    return f"{prefix}/{service}/"


def instance_key(prefix: str, service: str, address: str) -> str:
    """`<prefix>/<service>/<host:port>`: one key per instance."""
    return f"{service_prefix(prefix, service)}{address}"


def agent_service_id(service: str, address: str) -> str:
    """The agent service id of one instance (unique per service and address on an agent)."""
    return f"gorpc:{service}:{address}"


def tcp_address(address: str) -> TcpAddress | None:
    """`address` as host and port, or None for a Unix socket (which gets no agent service)."""
    parsed = parse_address(address)
    return parsed if isinstance(parsed, TcpAddress) else None
