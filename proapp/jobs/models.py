"""What the workers tell about themselves: one row per worker, its last heartbeat (read by ``/readyz`` and
``/metrics``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from proapp.db import Base


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeat"

    worker: Mapped[str] = mapped_column(String(80), primary_key=True)     # host:pid:random
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime] = mapped_column(index=True)
