"""API keys: ``pk_<prefix>.<secret>``, printed once; only the SHA-256 of the whole key is stored."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proapp.audit.trail import record
from proapp.export.models import ApiKey, ApiPull
from proapp.studies.models import Site, Study
from proapp.tokens import token_hash


class KeyError_(ValueError):
    pass



def create_key(db: Session, *, study_code: str, name: str, now: datetime, created_by: str,
               site_codes: tuple[str, ...] = ()) -> tuple[ApiKey, str]:
    """The new key's row and the key itself (shown once, never stored)."""
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise KeyError_("the key needs a name of 1 to 120 characters (e.g. the EDC's name)")
    study = db.scalar(select(Study).where(Study.code == study_code))
    if study is None:
        raise KeyError_(f"unknown study {study_code}")
    site_ids = []
    for code in dict.fromkeys(site_codes):
        site_id = db.scalar(select(Site.id).where(Site.study_id == study.id, Site.code == code))
        if site_id is None:
            raise KeyError_(f"unknown site {code} in {study_code}")
        site_ids.append(site_id)
    prefix = secrets.token_hex(4)
    key = f"pk_{prefix}.{secrets.token_urlsafe(32)}"
    row = ApiKey(prefix=prefix, secret_sha256=token_hash(key), name=name, study_id=study.id,
                 site_ids=site_ids or None, created_at=now, created_by=created_by)
    db.add(row)
    db.flush()
    return row, key


def revoke_key(db: Session, prefix: str, now: datetime) -> ApiKey:
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == prefix.removeprefix("pk_").split(".")[0]))
    if row is None:
        raise KeyError_(f"no key {prefix}")
    if row.revoked_at is None:
        row.revoked_at = now
        db.flush()
    return row


def authenticate(db: Session, authorization: str | None) -> ApiKey | None:
    """The live key in an ``Authorization: Bearer pk_...`` header, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith("pk_") or "." not in key or len(key) > 100:
        return None
    prefix = key[3:].split(".", 1)[0]
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_sha256, token_hash(key)):
        return None
    return row


def record_pull(db: Session, key: ApiKey, *, endpoint: str, params: dict[str, str], status: int, items: int | None,
                now: datetime) -> None:
    """A request made with ``key``: its pull-log row, its audit entry and the key's last use."""
    db.add(ApiPull(api_key_id=key.id, at=now, endpoint=endpoint[:60], params=params or None, status=status,
                   items=items))
    db.flush()
    record(db, actor=f"api:pk_{key.prefix}", action="api.request", entity="api_key", entity_id=key.id,
           new={"endpoint": endpoint, "params": params, "status": status, "items": items}, at=now)
    db.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))


def record_failed_stream(db: Session, key_id: int, *, endpoint: str, now: datetime, error: str) -> None:
    """A page whose stream broke after its 200 had gone: its pull-log row says 500, as the client got an
    incomplete body, and the audit trail keeps why."""
    row = db.scalar(select(ApiPull).where(ApiPull.api_key_id == key_id, ApiPull.endpoint == endpoint[:60])
                    .order_by(ApiPull.id.desc()).limit(1))
    if row is not None:
        row.status = 500
    key = db.get(ApiKey, key_id)
    record(db, actor=f"api:pk_{key.prefix}" if key else "api", action="api.stream_failed", entity="api_key",
           entity_id=key_id, new={"endpoint": endpoint, "error": error[:200]}, at=now)
