"""Fixed-window rate limits kept in the database, so they hold across every web process.

``hit(scope, ident, limit, window)`` counts one request and returns None, or the seconds to wait (for a 429 with
Retry-After) once ``limit`` requests fell in the current window. One atomic upsert per call, in its own short
transaction: a request that fails later still counts."""

from __future__ import annotations

import hashlib
import ipaddress
import time

from flask import current_app
from sqlalchemy import BigInteger, Integer, String, case, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from proapp import db
from proapp.db import Base, dialect_insert


class RateCounter(Base):
    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)     # SHA-256 of scope and identifier
    window_start: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)


def hit(scope: str, ident: str, limit: int, window: int, now: float | None = None) -> int | None:
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    start = int(now // window * window)
    key = hashlib.sha256(f"{scope}\x00{ident}".encode()).hexdigest()
    engine = db.engine()
    insert = dialect_insert(engine.dialect.name)
    stmt = insert(RateCounter).values(key=key, window_start=start, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"count": _case(stmt, start), "window_start": start}).returning(RateCounter.count)
    with engine.begin() as conn:
        count = conn.execute(stmt).scalar_one()
    if count > limit:
        return max(1, start + window - int(now))
    return None


def peek(scope: str, ident: str, limit: int, window: int, now: float | None = None) -> int | None:
    """Like ``hit`` without counting: the seconds to wait when ``limit`` is already used up, else None."""
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    start = int(now // window * window)
    key = hashlib.sha256(f"{scope}\x00{ident}".encode()).hexdigest()
    with db.engine().connect() as conn:
        row = conn.execute(select(RateCounter.window_start, RateCounter.count).where(RateCounter.key == key)).first()
    if row is not None and row.window_start == start and row.count >= limit:
        return max(1, start + window - int(now))
    return None


def network(address: str) -> str:
    """The network an address belongs to for rate limits: IPv4 /24, IPv6 /64 (a carrier's NAT pool, a home)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False))


def _case(stmt, start: int):
    return case((RateCounter.window_start == start, RateCounter.count + 1), else_=1)


def limits() -> dict[str, tuple[int, int]]:
    cfg = current_app.config
    return {
        "link": (cfg["RATE_LINK_PER_MINUTE"], 60),              # failed openings per network
        "link_token": (cfg["RATE_LINK_PER_TOKEN"], 60),
        "login_ip": (cfg["RATE_LOGIN_PER_IP"], 900),
        "login_account": (cfg["RATE_LOGIN_PER_ACCOUNT"], 900),
        "api": (cfg["RATE_API_PER_MINUTE"], 60),
    }


def purge(db: Session, now: float) -> int:
    """Delete the counters whose window has passed (the worker, every few minutes): a counter only matters in its
    window, and the table would otherwise keep one row per IP address and account ever seen. The rows do not say
    their window, so a row goes once the longest window has passed since its own began."""
    longest = max(window for _limit, window in limits().values())
    return db.execute(delete(RateCounter).where(RateCounter.window_start <= int(now) - longest)).rowcount


def check(name: str, ident: str) -> int | None:
    limit, window = limits()[name]
    return hit(name, ident, limit, window)


def used_up(name: str, ident: str) -> int | None:
    limit, window = limits()[name]
    return peek(name, ident, limit, window)
