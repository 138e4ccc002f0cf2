"""The contract both sides import: message types and the interface of todo.Tasks.

The server implements the interface; a client calls it through `client.stub(Tasks)`, typed by
these signatures (mypy infers `await tasks.Add(...)` as a `Created`, with the gorpc mypy plugin).
A client without this file can get an equivalent one from the server:
`gorpc describe --python 127.0.0.1:8000 todo.Tasks > contract.py`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import AsyncIterator

import msgspec


class Priority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Task(msgspec.Struct, kw_only=True):
    title: str
    priority: Priority = Priority.NORMAL
    due: datetime.datetime | None = None
    tags: list[str] = []


class Created(msgspec.Struct):
    id: int
    created_at: datetime.datetime


class TaskId(msgspec.Struct):
    id: int


class Query(msgspec.Struct, kw_only=True):
    tag: str | None = None
    limit: int = 100


class Tasks:
    """A to-do list."""

    name = "todo.Tasks"

    async def Add(self, req: Task) -> Created:
        """Adds a task."""
        raise NotImplementedError

    async def Get(self, req: TaskId) -> Task:
        """One task, by id."""
        raise NotImplementedError

    def List(self, req: Query) -> AsyncIterator[Task]:
        """The tasks with a tag (or all), as a stream."""
        raise NotImplementedError

    async def AddMany(self, requests: AsyncIterator[Task]) -> list[Created]:
        """Adds a stream of tasks."""
        raise NotImplementedError
