"""Calls each method of routeguide.RouteGuide: unary, server-, client- and bidirectional streaming.

Run: python examples/streaming/client.py [--target host:port]
"""

import argparse
import asyncio
from collections.abc import AsyncIterator

from gorpc import Client

SERVICE = "/routeguide.RouteGuide"


async def route(points: list[tuple[int, int]]) -> AsyncIterator[dict[str, int]]:
    for lat, lon in points:
        yield {"lat": lat, "lon": lon}


async def notes() -> AsyncIterator[dict[str, object]]:
    for message, (lat, lon) in [("first", (0, 0)), ("second", (0, 1)), ("third", (0, 0)), ("fourth", (0, 1))]:
        yield {"at": {"lat": lat, "lon": lon}, "message": message}


async def main(target: str) -> None:
    async with Client(target, timeout=10.0) as client:
        feature = await client.call(f"{SERVICE}/GetFeature", {"lat": 3, "lon": 4})
        print("GetFeature:", feature["name"])

        area = {"lo": {"lat": 2, "lon": 2}, "hi": {"lat": 3, "lon": 4}}
        async with client.stream(f"{SERVICE}/ListFeatures", area) as found:
            print("ListFeatures:", [f["name"] async for f in found])

        summary = await client.call(f"{SERVICE}/RecordRoute", requests=route([(0, 0), (3, 4), (3, 0)]))
        print("RecordRoute:", summary)

        async for note in client.stream(f"{SERVICE}/RouteChat", requests=notes()):
            print(f"RouteChat: at {note['at']['lat']},{note['at']['lon']} earlier: {note['message']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:8000", help="host:port or unix:/path")
    asyncio.run(main(parser.parse_args().target))
