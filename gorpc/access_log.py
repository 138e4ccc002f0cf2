"""The access log (`access_log = true` in `[server]`): one line per call through `logging`, on the
`gorpc.access` logger at INFO:

    /helloworld.Greeter/SayHello peer=127.0.0.1:50312 status=OK 0.412ms request=17B reply=21B

A `CallObserver` of the server's calls; with the log off it is not there. A one-way call or a
stream shows `reply=-`.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("gorpc.access")


class AccessLog:
    """Logs each call's line when it ends."""

    def call_ended(
        self, path: str, peer: str, status: str, seconds: float, request_size: int, reply_size: int | None
    ) -> None:
        logger.info(
            "%s peer=%s status=%s %.3fms request=%dB reply=%s",
            path,
            peer,
            status,
            seconds * 1e3,
            request_size,
            "-" if reply_size is None else f"{reply_size}B",
        )
