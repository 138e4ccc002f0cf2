"""A streaming service for tests that need it in another process (`gorpc serve
tests.stream_service:Ticker`): the command line, and memory measured per process."""

from collections.abc import AsyncIterator

from gorpc import Service


class Ticker(Service):
    """Streams to try the command line and flow control on."""

    name = "test.Ticker"

    def __init__(self) -> None:
        self.produced = 0

    async def Ticks(self, n: int) -> AsyncIterator[int]:
        """Server-streaming: 0 .. n-1."""
        for i in range(n):
            yield i

    async def Total(self, numbers: AsyncIterator[float]) -> float:
        """Client-streaming: the sum of the numbers sent."""
        return sum([n async for n in numbers])

    async def Upper(self, words: AsyncIterator[str]) -> AsyncIterator[str]:
        """Bidirectional: each word upper-cased as it arrives."""
        async for word in words:
            yield word.upper()

    async def Firehose(self, size: int) -> AsyncIterator[bytes]:
        """Server-streaming, endless: items of `size` bytes as fast as the caller's credit allows."""
        while True:
            self.produced += 1
            yield b"x" * size

    async def Produced(self, req: None) -> int:
        """How many items Firehose has made so far."""
        return self.produced
