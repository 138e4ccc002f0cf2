"""Calls the auth example's server without a token (refused), then with GORPC_TOKEN.

Run: GORPC_TOKEN=s3cret python examples/auth/client.py --target 127.0.0.1:8000
"""

import argparse
import asyncio
import os

from gorpc import Client, Unauthenticated
from gorpc.auth import bearer_token


async def main(target: str, tls_ca: str | None) -> None:
    async with Client(target, tls_ca=tls_ca) as anonymous:
        try:
            await anonymous.call("/helloworld.Greeter/SayHello", {"msg": "hello"})
        except Unauthenticated as exc:
            print(f"without a token: {exc}")
    token = os.environ["GORPC_TOKEN"]
    async with Client(target, tls_ca=tls_ca, interceptors=[bearer_token(token)]) as client:
        reply = await client.call("/helloworld.Greeter/SayHello", {"msg": "hello"})
        print(f"with the token: {reply['msg']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:8000")
    parser.add_argument("--tls-ca", default=None, help="CA (or self-signed certificate) to trust")
    args = parser.parse_args()
    asyncio.run(main(args.target, args.tls_ca))
