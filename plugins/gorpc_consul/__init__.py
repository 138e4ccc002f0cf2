"""Consul plugins for gorpc: the `consul` resolver (KV + sessions + agent services) and `consul_dns`."""

from gorpc_consul.errors import ConsulError, ConsulPermissionDenied
from gorpc_consul.names import dns_label
from gorpc_consul.options import ConsulOptions
from gorpc_consul.resolver import ConsulResolver

__all__ = ["ConsulError", "ConsulOptions", "ConsulPermissionDenied", "ConsulResolver", "dns_label"]
