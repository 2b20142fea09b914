"""Checkpoints of the audit trail: where every chain ended at one moment, signed with the audit key.

The worker writes one at a set interval when anything changed (``PROAPP_AUDIT_CHECKPOINT_SECONDS``). A checkpoint
is only worth something once it is kept where the database's owner cannot reach: ``proapp audit checkpoint
--append FILE`` (a file on another host, mounted append-only), ``--syslog`` (forwarded to the hospital's log
server), or sent to the sponsor. ``proapp audit verify --checkpoints FILE`` then compares the trail with the
newest checkpoint of the file: an entry it names that is missing (a truncated or rolled-back chain) or whose hash
differs (a history rewritten, even with the key and recomputed hashes) is named. The chains are hashed one entry
after the other, so every entry before a checkpoint is covered by it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from proapp.audit.keys import AuditKeys
from proapp.audit.models import AuditCheckpoint, AuditEvent
from proapp.audit.restores import explaining, genuine
from proapp.audit.trail import Finding, signed_heads


class HeadsNotSigned(RuntimeError):
    """A chain's head does not carry the audit key's MAC: the trail was cut or extended outside proapp, and no
    checkpoint may sign that state."""


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def signed_body(keys: AuditKeys, now: datetime, current: dict[str, list[Any]], **extra: Any) -> tuple[str, str]:
    """(body, mac) of a checkpoint naming ``current`` ({chain: [seq, hash]}) at ``now``."""
    body = json.dumps({"v": 1, "at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "heads": current,
                       **extra}, sort_keys=True, separators=(",", ":"))
    return body, _mac(keys.secret(keys.newest), body)


def write(db: Session, keys: AuditKeys, now: datetime) -> AuditCheckpoint | None:
    """A new checkpoint of every chain's end, unless nothing was appended since the last one. Refuses
    (HeadsNotSigned) when a head is not signed with the key: a truncated or extended chain is never signed."""
    ends, bad = signed_heads(db, keys)
    if bad:
        raise HeadsNotSigned("no checkpoint written: " + "; ".join(str(f) for f in bad[:5]) +
                             (f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""))
    current = {chain: [seq, digest] for chain, (seq, digest) in sorted(ends.items()) if seq}
    last = db.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
    if last is not None and json.loads(last.body)["heads"] == current:
        return None
    body, mac = signed_body(keys, now, current)
    checkpoint = AuditCheckpoint(at=now, body=body, key_id=keys.newest, mac=mac)
    db.add(checkpoint)
    db.flush()
    return checkpoint


def latest(db: Session) -> AuditCheckpoint | None:
    return db.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))


def as_line(checkpoint: AuditCheckpoint) -> str:
    """One JSON line, to keep outside the database."""
    return json.dumps({"checkpoint": checkpoint.id, "body": checkpoint.body, "key_id": checkpoint.key_id,
                       "mac": checkpoint.mac}, separators=(",", ":"))


def check(db: Session, lines: Iterable[str], keys: AuditKeys,
          restored: list[str] | None = None) -> tuple[str | None, list[Finding], dict[str, list[Any]] | None]:
    """Compare the trail with the newest genuine checkpoint among ``lines``. Returns (which checkpoint, findings,
    the chains' ends it names); without a genuine one (None, findings, None). A line that is not a genuine
    checkpoint is a finding itself. With ``restored``, what a declared restore explains goes there instead
    (proapp/audit/restores.py)."""
    declared = genuine(db, keys) if restored is not None else []
    findings: list[Finding] = []
    newest: tuple[str, dict[str, list[Any]]] | None = None
    for n, line in enumerate((ln for ln in lines if ln.strip()), 1):
        try:
            record = json.loads(line)
            body, key_id, mac = record["body"], record["key_id"], record["mac"]
            parsed = json.loads(body)
            name = f"checkpoint {record.get('checkpoint', n)} ({parsed['at']})"
        except (ValueError, KeyError, TypeError):
            findings.append(Finding(None, f"line {n} of the checkpoints is not a checkpoint"))
            continue
        secret = keys.secret(key_id)
        if secret is None:
            findings.append(Finding(None, f"{name} is signed with a key proapp does not have ({key_id})"))
            continue
        if not hmac.compare_digest(_mac(secret, body), str(mac)):
            findings.append(Finding(None, f"{name} does not match its signature (altered)"))
            continue
        newest = (name, parsed["heads"])
    if newest is None:
        return None, findings or [Finding(None, "no genuine checkpoint to compare with")], None
    name, ends = newest
    wanted = [(chain, int(seq)) for chain, (seq, _hash) in ends.items()]
    found: dict[tuple[str, int], str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found |= {(c, s): h for c, s, h in db.execute(
            select(AuditEvent.chain, AuditEvent.seq, AuditEvent.hash)
            .where(tuple_(AuditEvent.chain, AuditEvent.seq).in_(chunk)))}
    for chain, (seq, expected) in sorted(ends.items()):
        got = found.get((chain, int(seq)))
        if got != expected and restored is not None and (why := explaining(declared, chain, int(seq))):
            restored.append(why)
        elif got is None:
            findings.append(Finding(None, f"chain {chain}: its entry #{seq}, in {name}, is missing: the chain was "
                                          "truncated or rolled back"))
        elif got != expected:
            findings.append(Finding(None, f"chain {chain}: its entry #{seq} differs from {name}: the history "
                                          "before it was rewritten"))
    return name, findings, ends
