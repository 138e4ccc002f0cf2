"""Serves helloworld.Greeter. Run: python examples/helloworld/server.py [--address host:port]"""

import argparse
import logging

from gorpc import Server, Service


class Greeter(Service):
    name = "helloworld.Greeter"

    async def SayHello(self, req: dict[str, str]) -> dict[str, str]:
        """Answers {"msg": "<msg> world"}."""
        return {"msg": req["msg"] + " world"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default=None, help="host:port or unix:/path (default 127.0.0.1:8000)")
    parser.add_argument("--config", default=None, help="a gorpc TOML file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # shows "serving ... on <address>"

    server = Server(address=args.address, config=args.config)
    server.register(Greeter())
    server.serve()  # blocks; Ctrl-C or SIGTERM stops it gracefully


if __name__ == "__main__":
    main()
