"""Serves examples.Inventory with metrics on a Prometheus endpoint, the health service and the
access log, as gorpc.toml configures them.

Run: python examples/observability/server.py [--address ADDR] [--metrics-address ADDR]
Then: curl http://127.0.0.1:9464/metrics   and   gorpc health 127.0.0.1:8020 examples.Inventory
"""

import argparse
import logging
from pathlib import Path

from gorpc import Server, Service
from gorpc.serving import ServingStatus

CONFIG = Path(__file__).with_name("gorpc.toml")


class Inventory(Service):
    name = "examples.Inventory"

    def __init__(self) -> None:
        self.stock = {"apple": 3, "pear": 0}
        self.server: Server | None = None

    async def Count(self, item: str) -> int:
        """How many of `item` are in stock; an unknown item is an error."""
        return self.stock[item]

    async def Pause(self, paused: bool) -> str:
        """Take this service out of (or back into) service: its health status follows."""
        assert self.server is not None
        status = ServingStatus.NOT_SERVING if paused else ServingStatus.SERVING
        self.server.health.set(self.name, status)
        return status.name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", default=None, help="where to listen (overrides the config)")
    parser.add_argument(
        "--metrics-address", default=None, help="the /metrics endpoint (overrides the config)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    plugins = {"prometheus": {"address": args.metrics_address}} if args.metrics_address else None
    server = Server(address=args.address, config=CONFIG, plugins=plugins)
    inventory = Inventory()
    inventory.server = server
    server.register(inventory)
    server.serve()


if __name__ == "__main__":
    main()
