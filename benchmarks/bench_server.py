"""A gorpc server for benchmarks: helloworld.Greeter on the address given (port 0 allowed)."""

import logging
import sys

from gorpc import Server, Service


class Greeter(Service):
    name = "helloworld.Greeter"

    async def SayHello(self, req: dict[str, str]) -> dict[str, str]:
        return {"msg": req["msg"] + " world"}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = Server(address=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0")
    server.register(Greeter())
    server.serve()
