"""A service for worker-process tests (`gorpc serve tests.worker_service:Pids --workers 2`): each
call says which process answered it."""

import asyncio
import os
import sys

from gorpc import Service


class Pids(Service):
    name = "test.Pids"

    async def Pid(self, req: None) -> int:
        """The answering worker's process id."""
        return os.getpid()

    async def Work(self, seconds: float) -> int:
        """A call that takes `seconds` (and says on stdout that it started)."""
        sys.stdout.write(f"working in {os.getpid()}\n")  # one write: workers share the pipe
        sys.stdout.flush()
        await asyncio.sleep(seconds)
        return os.getpid()
