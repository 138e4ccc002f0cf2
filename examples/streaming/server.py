"""Serves routeguide.RouteGuide, with a method of each kind (after gRPC's route guide example).

Run: python examples/streaming/server.py [--address host:port]
"""

import argparse
import asyncio
import logging
import math
from collections.abc import AsyncIterator

from gorpc import Server, Service

Point = dict[str, int]  # {"lat": ..., "lon": ...}


def features() -> list[dict[str, object]]:
    """A 10 x 10 grid of named places."""
    return [
        {"name": f"place-{lat}-{lon}", "at": {"lat": lat, "lon": lon}}
        for lat in range(10)
        for lon in range(10)
    ]


def distance(a: Point, b: Point) -> float:
    return math.hypot(a["lat"] - b["lat"], a["lon"] - b["lon"])


class RouteGuide(Service):
    """Places on a grid, routes between them, and notes left at them."""

    name = "routeguide.RouteGuide"

    def __init__(self) -> None:
        self._features = features()
        self._notes: dict[tuple[int, int], list[str]] = {}

    async def GetFeature(self, point: Point) -> dict[str, object]:
        """Unary: the place at a point."""
        return next((f for f in self._features if f["at"] == point), {"name": "", "at": point})

    async def ListFeatures(self, area: dict[str, Point]) -> AsyncIterator[dict[str, object]]:
        """Server-streaming: every place in the rectangle {"lo": point, "hi": point}, as found."""
        lo, hi = area["lo"], area["hi"]
        for feature in self._features:
            at = feature["at"]
            assert isinstance(at, dict)
            if lo["lat"] <= at["lat"] <= hi["lat"] and lo["lon"] <= at["lon"] <= hi["lon"]:
                yield feature

    async def RecordRoute(self, points: AsyncIterator[Point]) -> dict[str, float]:
        """Client-streaming: the points of a route in; how many, and how long it was, out."""
        count, length, last = 0, 0.0, None
        async for point in points:
            count += 1
            if last is not None:
                length += distance(last, point)
            last = point
        return {"points": count, "distance": round(length, 3)}

    async def RouteChat(self, notes: AsyncIterator[dict[str, object]]) -> AsyncIterator[dict[str, object]]:
        """Bidirectional: for each note left at a point, the notes left there before it."""
        async for note in notes:
            at = note["at"]
            assert isinstance(at, dict)
            key = (at["lat"], at["lon"])
            for earlier in self._notes.get(key, []):
                yield {"at": at, "message": earlier}
            self._notes.setdefault(key, []).append(str(note["message"]))
            await asyncio.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:8000", help="host:port or unix:/path")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # shows "serving ... on <address>"
    server = Server(address=args.address)
    server.register(RouteGuide())
    server.serve()


if __name__ == "__main__":
    main()
