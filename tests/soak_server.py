"""The soak test's server: answers, fails, sleeps past deadlines and takes one-way calls.

Run by tests/test_soak.py in its own process, so its memory and descriptors are its own.
"""

import asyncio
import logging
import sys

from gorpc import InvalidRequest, Server, Service


class Soak(Service):
    name = "test.Soak"

    def __init__(self) -> None:
        self.recorded = 0

    async def SayHello(self, req: dict[str, str]) -> dict[str, str]:
        return {"msg": req["msg"] + " world"}

    async def Refuse(self, req: object) -> None:
        raise InvalidRequest(f"refused {req!r}")

    async def Sleep(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    async def Record(self, req: object) -> None:
        self.recorded += 1


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    server = Server(address=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0")
    server.register(Soak())
    server.serve()


if __name__ == "__main__":
    main()
