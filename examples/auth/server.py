"""Serves helloworld.Greeter to callers with a valid token only.

Run: GORPC_TOKENS=s3cret python examples/auth/server.py [--address 127.0.0.1:8000]
     (add --tls-cert/--tls-key in production: the token travels in the call's metadata)
"""

import argparse
import logging
import os

from gorpc import Server, Service
from gorpc.auth import require_token


class Greeter(Service):
    name = "helloworld.Greeter"

    async def SayHello(self, req: dict[str, str]) -> dict[str, str]:
        """Answers {"msg": "<msg> world"}."""
        return {"msg": req["msg"] + " world"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:8000", help="where to listen (port 0: any free port)")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate chain, to serve over TLS")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tokens = {t for t in os.environ.get("GORPC_TOKENS", "").split(",") if t}
    if not tokens:
        parser.error("set GORPC_TOKENS to the comma-separated tokens to accept")
    server = Server(
        address=args.address,
        interceptors=[require_token(tokens)],  # every call; pass exempt=[...] for public methods
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    server.register(Greeter())
    server.serve()


if __name__ == "__main__":
    main()
