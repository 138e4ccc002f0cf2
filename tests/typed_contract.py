"""A typed service for the contract tests: every kind of declared type, and every kind of method.
Strictly typed, since the mypy test checks a program that imports it."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import AsyncIterator
from typing import NotRequired, TypedDict

import msgspec

from gorpc import CallContext, Service


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Dimensions(TypedDict):
    width: int
    height: NotRequired[int]


@dataclasses.dataclass
class Owner:
    name: str
    email: str | None = None


class Item(msgspec.Struct, kw_only=True):
    """One thing in the shop."""

    name: str
    count: int = 1
    color: Color = Color.RED
    size: Size | None = None
    made: datetime.datetime | None = None
    tags: list[str] = []
    owner: Owner | None = None
    dimensions: Dimensions | None = None
    photo: bytes = b""


class Order(msgspec.Struct):
    items: list[Item]
    note: str | None = None


class Receipt(msgspec.Struct):
    total: int
    names: list[str]
    at: datetime.datetime


class Shop(Service):
    """Orders things, typed end to end."""

    name = "typed.Shop"

    def __init__(self) -> None:
        self.calls = 0

    async def Place(self, req: Order) -> Receipt:
        """Counts an order's items."""
        self.calls += 1
        return Receipt(
            total=sum(item.count for item in req.items),
            names=[item.name for item in req.items],
            at=datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC),
        )

    async def Echo(self, req: Item) -> Item:
        """The item as it arrived."""
        return req

    async def Owners(self, req: list[Owner]) -> dict[str, Owner]:
        return {owner.name: owner for owner in req}

    async def Sizes(self, req: Dimensions) -> Dimensions:
        return req

    async def Wrong(self, req: int) -> Receipt:
        """Breaks its own contract: the reply is not a Receipt."""
        return {"total": "lots"}  # type: ignore[return-value]

    async def Untyped(self, req, ctx: CallContext):  # type: ignore[no-untyped-def]
        return {"got": req, "method": ctx.method}

    async def Count(self, req: int) -> AsyncIterator[Item]:
        """Streams `req` items."""
        for i in range(req):
            yield Item(name=f"item-{i}", count=i)

    async def Total(self, requests: AsyncIterator[Item]) -> Receipt:
        """Adds up a stream of items."""
        items = [item async for item in requests]
        return Receipt(
            sum(i.count for i in items), [i.name for i in items], datetime.datetime.now(datetime.UTC)
        )

    async def Double(self, requests: AsyncIterator[Item]) -> AsyncIterator[Item]:
        async for item in requests:
            yield Item(name=item.name, count=item.count * 2)


class UntypedShop(Service):
    """The same service name, with no declared types: what an old server looks like."""

    name = "typed.Shop"

    async def Place(self, req):  # type: ignore[no-untyped-def]
        items = req["items"]
        return {
            "total": sum(item.get("count", 1) for item in items),
            "names": [item["name"] for item in items],
            "at": datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC),
        }

    async def Count(self, req):  # type: ignore[no-untyped-def]
        for i in range(req):
            yield {"name": f"item-{i}", "count": i, "color": "green"}
