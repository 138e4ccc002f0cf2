"""Per-call bearer tokens: a client interceptor that sends one, a server interceptor that checks it.

    client = Client(address, interceptors=[bearer_token(os.environ["GORPC_TOKEN"])])
    server = Server(address, interceptors=[require_token({"s3cret"})])

The token travels in the request metadata under `authorization` as `Bearer <token>`. Send it over
TLS only (`tls_cert`/`tls_key` on the server, `tls_ca` on the client): metadata is not encrypted.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from gorpc.context import CallContext
from gorpc.exceptions import Unauthenticated
from gorpc.types import Interceptor, Next

METADATA_KEY = "authorization"
SCHEME = "Bearer "

# A check gets the presented token and says whether it is valid; it may be async (a lookup).
TokenCheck = Callable[[str], bool | Awaitable[bool]]


def bearer_token(token: str | Callable[[], str], *, key: str = METADATA_KEY) -> Interceptor:
    """A client interceptor adding `Bearer <token>` to every call; `token` may be a function, called per
    call, for tokens that rotate."""

    async def add_token(ctx: CallContext, request: Any, call_next: Next) -> Any:
        ctx.metadata[key] = SCHEME + (token() if callable(token) else token)
        return await call_next(ctx, request)

    return add_token


def require_token(
    valid: Collection[str] | TokenCheck, *, key: str = METADATA_KEY, exempt: Collection[str] = ()
) -> Interceptor:
    """A server interceptor refusing calls without a valid bearer token with `Unauthenticated`.

    `valid` is the accepted tokens (compared in constant time) or a check function. Methods or
    services named in `exempt` (`/pkg.Service/Method` or `pkg.Service`) need no token.
    """
    check = valid if callable(valid) else _one_of(valid)

    async def check_token(ctx: CallContext, request: Any, call_next: Next) -> Any:
        if ctx.method not in exempt and ctx.service not in exempt:
            presented = ctx.metadata.get(key)
            if not isinstance(presented, str) or not presented.startswith(SCHEME):
                raise Unauthenticated(f"{ctx.method} needs a bearer token in the {key!r} metadata")
            verdict = check(presented[len(SCHEME) :])
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if not verdict:
                raise Unauthenticated(f"{ctx.method}: the bearer token is not valid")  # never echo it
        return await call_next(ctx, request)

    return check_token


def _one_of(tokens: Collection[str]) -> Callable[[str], bool]:
    accepted = [t.encode() for t in tokens]
    if not accepted:
        raise ValueError("require_token needs at least one valid token")

    def is_valid(token: str) -> bool:
        presented = token.encode()
        # Every candidate is compared, so the time taken says nothing about which one is close.
        return sum(hmac.compare_digest(presented, t) for t in accepted) > 0

    return is_valid
