"""The access log (`access_log = true` in `[server]`): one line per call through `logging`, on the
`gorpc.access` logger at INFO:

    /helloworld.Greeter/SayHello peer=127.0.0.1:50312 status=OK 0.412ms request=17B reply=21B

An observer of the server's calls (see `gorpc.observed`); with the log off it is not there.
"""

from __future__ import annotations

import logging

from gorpc.observed import CallRecord

logger = logging.getLogger("gorpc.access")


class AccessLog:
    """Logs each call's line when it ends."""

    def call_started(self) -> None:
        pass

    def call_ended(self, record: CallRecord) -> None:
        logger.info(
            "%s peer=%s status=%s %.3fms request=%dB reply=%dB%s",
            record.path,
            record.peer,
            record.status,
            record.duration * 1e3,
            record.request_size,
            record.reply_size,
            " oneway" if record.oneway else "",
        )
