"""Serves todo.Tasks with typed messages. Run: python examples/typed/server.py [--address host:port]

The handlers' annotations are the contract: requests arrive decoded and validated as the declared
types (a wrong field type is the caller's InvalidRequest, and the handler never runs).
"""

from __future__ import annotations

import argparse
import datetime
import logging
from collections.abc import AsyncIterator

from contract import Created, Query, Task, TaskId, Tasks

from gorpc import InvalidRequest, Server, Service


class TaskService(Service):
    name = Tasks.name

    def __init__(self) -> None:
        self._tasks: dict[int, Task] = {}

    async def Add(self, req: Task) -> Created:
        """Adds a task."""
        task_id = len(self._tasks) + 1
        self._tasks[task_id] = req
        return Created(id=task_id, created_at=datetime.datetime.now(datetime.UTC))

    async def Get(self, req: TaskId) -> Task:
        """One task, by id."""
        if req.id not in self._tasks:
            raise InvalidRequest(f"no task {req.id}")
        return self._tasks[req.id]

    async def List(self, req: Query) -> AsyncIterator[Task]:
        """The tasks with a tag (or all), as a stream."""
        tasks = [t for t in self._tasks.values() if req.tag is None or req.tag in t.tags]
        for task in tasks[: req.limit]:
            yield task

    async def AddMany(self, requests: AsyncIterator[Task]) -> list[Created]:
        """Adds a stream of tasks."""
        return [await self.Add(task) async for task in requests]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:8000", help="host:port or unix:/path")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = Server(address=args.address)
    server.register(TaskService())
    server.serve()


if __name__ == "__main__":
    main()
