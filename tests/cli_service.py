"""The service the CLI tests serve with `gorpc serve tests.cli_service:Shop`."""

import asyncio

from gorpc import CallContext, Service


class Shop(Service):
    """A shop to try the command line on."""

    name = "test.Shop"

    async def Echo(self, req: object) -> object:
        """Answers with the request itself."""
        return req

    async def Bytes(self, req: None) -> bytes:
        """Answers with raw bytes, which JSON shows as base64."""
        return b"\x00\x01gorpc"

    async def Fail(self, req: object) -> None:
        """Always raises ValueError."""
        raise ValueError(f"no such item {req!r}")

    async def Slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    async def Whoami(self, req: None, ctx: CallContext) -> dict[str, object]:
        """Answers with the request metadata it received."""
        ctx.response_metadata["served-by"] = "shop"
        return ctx.metadata

    def Count(self, items: list[object]) -> int:
        """Counts the items (a plain function: it runs in a thread)."""
        return len(items)
