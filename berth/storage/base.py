"""`Storage`: the one door to persistence, grouping the stores by resource."""

from __future__ import annotations

from berth.storage.assistants import AssistantStore
from berth.storage.checkpoints import BerthSaver
from berth.storage.crons import CronStore
from berth.storage.database import Database
from berth.storage.runs import RunStore
from berth.storage.threads import ThreadStore


class Storage:
    """Everything Berth keeps, on one database.

    Args:
        uri: the database URI (`sqlite:///…` or `postgresql://…`).
    """

    def __init__(self, uri: str) -> None:
        self.db = Database(uri)
        self.assistants = AssistantStore(self.db)
        self.threads = ThreadStore(self.db)
        self.runs = RunStore(self.db)
        self.crons = CronStore(self.db)
        self.checkpointer = BerthSaver(self.db)

    async def open(self) -> None:
        await self.db.open()
        await self.db.migrate()

    async def close(self) -> None:
        await self.db.close()
