"""Calls todo.Tasks through a typed stub. Run: python examples/typed/client.py [--target host:port]"""

from __future__ import annotations

import argparse
import asyncio
import datetime

from contract import Priority, Query, Task, TaskId, Tasks

from gorpc import Client, InvalidRequest


async def main(target: str) -> None:
    async with Client(target) as client:
        tasks = client.stub(Tasks)
        due = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
        created = await tasks.Add(
            Task(title="write the report", priority=Priority.HIGH, due=due, tags=["work"])
        )
        print(f"added task {created.id}")
        await tasks.AddMany([Task(title="buy milk", tags=["home"]), Task(title="file taxes", tags=["home"])])
        task = await tasks.Get(TaskId(created.id), timeout=2)
        print(f"task {created.id}: {task.title} ({task.priority.value}, due {task.due:%Y-%m-%d})")
        async for home in tasks.List(Query(tag="home")):
            print(f"home: {home.title}")
        try:  # what an untyped caller sending a wrong field type gets
            await client.call("/todo.Tasks/Get", {"id": "one"})
        except InvalidRequest as exc:
            print(f"refused: {exc.message}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:8000", help="host:port or unix:/path")
    asyncio.run(main(parser.parse_args().target))
