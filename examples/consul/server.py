"""Serves examples.Hello, registered in Consul.

Run: python examples/consul/server.py --consul 127.0.0.1:8500
"""

import argparse
import logging

from gorpc import Server, Service


class Hello(Service):
    name = "examples.Hello"

    def __init__(self, label: str) -> None:
        self.label = label

    async def SayHello(self, req: dict[str, str]) -> dict[str, str]:
        """Answers with a greeting and the name of the server that made it."""
        return {"msg": f"hello {req['name']}", "server": self.label}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--consul", default="127.0.0.1:8500", help="the Consul agent's HTTP address")
    parser.add_argument("--address", default="127.0.0.1:0", help="where to listen (port 0: any free port)")
    parser.add_argument("--label", default="server", help="the name this server answers with")
    parser.add_argument("--weight", default="1", help="weight for the weighted_round_robin balancer")
    parser.add_argument("--prefix", default="gorpc", help="the Consul KV prefix instances are written under")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"[{args.label}] %(message)s")

    server = Server(
        address=args.address,
        resolver="consul",
        metadata={"weight": args.weight, "version": "1.0"},
        plugins={"consul": {"address": args.consul, "prefix": args.prefix}},
    )
    server.register(Hello(args.label))
    server.serve()  # registers in Consul once listening; SIGTERM deregisters, drains, stops


if __name__ == "__main__":
    main()
