"""Errors of the Consul plugins. A registry that cannot be used makes the caller's service unavailable.

Unavailable (gorpc)
└── ConsulError                     Consul answered with an error, or could not be reached
    └── ConsulPermissionDenied (PermissionError)   HTTP 403: a missing or insufficient ACL token
"""

from __future__ import annotations

from gorpc.exceptions import Unavailable


class ConsulError(Unavailable):
    """Consul could not be reached, or refused a request. `status` is the HTTP status when the
    agent answered (None when it could not be reached)."""

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConsulPermissionDenied(ConsulError, PermissionError):
    """Consul's ACLs refused the request: set `token` in [plugins.consul]."""
