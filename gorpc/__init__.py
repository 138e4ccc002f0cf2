"""gorpc: a small, fast RPC framework for asyncio with pluggable discovery, balancing and tracing."""

from gorpc.blocking import BlockingClient, BlockingReplyStream
from gorpc.client import Client
from gorpc.client_stream import ReplyStream
from gorpc.config import ClientConfig, ServerConfig
from gorpc.context import CallContext
from gorpc.exceptions import (
    Cancelled,
    ConfigError,
    ConnectionFailed,
    DeadlineExceeded,
    GorpcError,
    InternalError,
    InvalidRequest,
    MessageTooLarge,
    MethodNotFound,
    NoNodesAvailable,
    PermissionDenied,
    PluginNotFound,
    ProtocolError,
    RemoteError,
    RPCError,
    StatusCode,
    Unauthenticated,
    Unavailable,
)
from gorpc.kinds import MethodKind
from gorpc.server import Server
from gorpc.service import Service
from gorpc.types import (
    Balancer,
    Codec,
    Interceptor,
    Next,
    Node,
    ResolverPlugin,
    ServiceInstance,
    TracingPlugin,
)

__version__ = "0.1.0"

__all__ = [
    "Balancer",
    "BlockingClient",
    "BlockingReplyStream",
    "CallContext",
    "Cancelled",
    "Client",
    "ClientConfig",
    "Codec",
    "ConfigError",
    "ConnectionFailed",
    "DeadlineExceeded",
    "GorpcError",
    "Interceptor",
    "InternalError",
    "InvalidRequest",
    "MessageTooLarge",
    "MethodKind",
    "MethodNotFound",
    "Next",
    "NoNodesAvailable",
    "Node",
    "PermissionDenied",
    "PluginNotFound",
    "ProtocolError",
    "RPCError",
    "RemoteError",
    "ReplyStream",
    "ResolverPlugin",
    "Server",
    "ServerConfig",
    "Service",
    "ServiceInstance",
    "StatusCode",
    "TracingPlugin",
    "Unauthenticated",
    "Unavailable",
]
