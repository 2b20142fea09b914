"""Recording and verifying the audit trail.

Services call ``record(db, ...)``; the entries wait in the session and are written by a ``before_commit`` hook, in
the same transaction as the change (a rolled-back transaction records nothing). Each entry goes to the chain of
its patient (``patient:<id>``), or to ``system`` for staff and system events. The hook locks the head row of each
chain it appends to (only those: two patients' answers never wait for each other), numbers the entries after the
chain's last one, and chains them with HMAC-SHA-256 under the newest key of ``PROAPP_AUDIT_KEYS``
(hash = HMAC(key, previous hash | the entry's canonical JSON), the key's id kept with the entry). Without the
key, an entry cannot be rewritten and its hash recomputed unnoticed.

Each chain's head row (where it ends) carries its own MAC under the key (``head_mac``): without the key, nobody
can move a head back over entries cut from the chain's end, nor forward over entries added to it.

The entries written before chains were per patient form the ``legacy`` chain, hashed with plain SHA-256 as they
were (anyone can recompute such a hash). It is sealed for good: migration 0018 signed its head and wrote a
checkpoint naming its end, and the database refuses any entry without a key id, any entry of the legacy chain and
any change of its head. ``verify`` accepts a keyless entry only in the legacy chain, up to its signed head.

``verify`` walks the chains (or one) and names every entry that was altered, removed, inserted or moved, every
chain cut at its end and every head not signed with the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import and_, bindparam, event, func, insert, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from proapp.audit.keys import AuditKeys
from proapp.audit.models import AuditChainHead, AuditEvent
from proapp.db import dialect_insert, make_engine

GENESIS = "0" * 64
LEGACY = "legacy"
SYSTEM = "system"
PENDING = "proapp.audit.pending"
AUDITED = "proapp.audit.hooked"         # in the info of the sessions whose commit writes the entries


def chain_of(patient_id: int | None) -> str:
    return f"patient:{patient_id}" if patient_id is not None else SYSTEM


def record(db: Session, *, actor: str, action: str, entity: str, entity_id: Any = None, patient_id: int | None = None,
           old: dict[str, Any] | None = None, new: dict[str, Any] | None = None, reason: str | None = None,
           at: datetime | None = None) -> None:
    """Add an entry to this transaction (written at commit, with the change)."""
    if not db.info.get(AUDITED):
        raise RuntimeError("this session does not write the audit trail: use a session of the app (proapp.db)")
    if not db.in_transaction():
        db.begin()                      # so that a rollback or close before any SQL also drops the entry
    db.info.setdefault(PENDING, []).append({
        "at": (at or datetime.now(UTC)).astimezone(UTC), "actor": actor[:160], "action": action[:60],
        "entity": entity[:40], "entity_id": None if entity_id is None else str(entity_id)[:64],
        "patient_id": patient_id, "old": _jsonable(old), "new": _jsonable(new),
        "reason": reason[:500] if reason else None})


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str, sort_keys=True))


_LEGACY_FIELDS = ("action", "actor", "at", "entity", "entity_id", "id", "new", "old", "patient_id", "reason")
_string = json.encoder.encode_basestring        # what json.dumps(text, ensure_ascii=False) writes, in C


def _json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(entry: dict[str, Any]) -> str:
    """The entry as hashed: the JSON of its fields, keys sorted, no spaces (what ``json.dumps(body,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes; built field by field because ``verify``
    does it for every entry of the trail). A keyed entry is known by its chain and number (its id, given by the
    database when it is written, orders the trail only); a legacy entry by its id."""
    at = entry["at"].astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    if entry.get("key_id") is not None:
        j = _json
        return (f'{{"action":{j(entry["action"])},"actor":{j(entry["actor"])},"at":"{at}","chain":{j(entry["chain"])},'
                f'"entity":{j(entry["entity"])},"entity_id":{j(entry["entity_id"])},"key_id":{j(entry["key_id"])},'
                f'"new":{j(entry["new"])},"old":{j(entry["old"])},"patient_id":{j(entry["patient_id"])},'
                f'"reason":{j(entry["reason"])},"seq":{j(entry["seq"])}}}')
    return "{" + ",".join(f'"{name}":' + (f'"{at}"' if name == "at" else _json(entry[name]))
                          for name in _LEGACY_FIELDS) + "}"


def chain_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """A legacy entry's hash: plain SHA-256 (anyone can recompute it; kept to verify the entries made so)."""
    return hashlib.sha256(f"{prev_hash}|{canonical(entry)}".encode()).hexdigest()


def keyed_hash(secret: bytes, prev_hash: str, entry: dict[str, Any]) -> str:
    return hmac.new(secret, f"{prev_hash}|{canonical(entry)}".encode(), hashlib.sha256).hexdigest()


def head_mac(secret: bytes, chain: str, last_seq: int, last_hash: str) -> str:
    """The MAC of a chain's head row (``head|`` keeps it apart from entry hashes and checkpoints)."""
    return hmac.new(secret, f"head|{chain}|{int(last_seq)}|{last_hash}".encode(), hashlib.sha256).hexdigest()


_HEAD = AuditChainHead.__table__
_EVENTS = AuditEvent.__table__
# Core statements: the writer runs in every transaction that records something (every answer saved).
_LOCK_HEADS = (select(_HEAD.c.chain, _HEAD.c.last_seq, _HEAD.c.last_hash)
               .where(_HEAD.c.chain.in_(bindparam("chains", expanding=True))).order_by(_HEAD.c.chain)
               .with_for_update())
_MOVE_HEAD = (update(_HEAD).where(_HEAD.c.chain == bindparam("chain_name"))
              .values(last_seq=bindparam("new_last_seq"), last_hash=bindparam("new_last_hash"),
                      key_id=bindparam("new_key_id"), mac=bindparam("new_mac")))
_INSERT_EVENTS = insert(_EVENTS).values({c.name: bindparam(c.name) for c in _EVENTS.columns})
# PostgreSQL gives the id itself (the column's default is the sequence's next value).
_INSERT_EVENTS_NO_ID = insert(_EVENTS).values({c.name: bindparam(c.name) for c in _EVENTS.columns if c.name != "id"})


def _keys() -> AuditKeys:
    return current_app.extensions["proapp.audit_keys"]


def _lock_heads(conn: Any, chains: list[str], keys: AuditKeys | None = None) -> dict[str, tuple[int, str]]:
    """Lock the head rows of ``chains`` (sorted: two transactions always lock in the same order, so they cannot
    deadlock) and read where each ends; new chains get their heads first. A fixed number of statements, however
    many chains (the worker's pass may queue an SMS for every patient)."""
    heads = {r.chain: (r.last_seq, r.last_hash) for r in conn.execute(_LOCK_HEADS, {"chains": chains})}
    missing = [c for c in chains if c not in heads]
    if missing:
        keys = keys or _keys()
        secret = keys.secret(keys.newest)
        upsert = dialect_insert(conn.dialect.name)
        conn.execute(upsert(_HEAD).on_conflict_do_nothing(),
                     [{"chain": c, "last_seq": 0, "last_hash": GENESIS, "key_id": keys.newest,
                       "mac": head_mac(secret, c, 0, GENESIS)} for c in missing])
        heads |= {r.chain: (r.last_seq, r.last_hash) for r in conn.execute(_LOCK_HEADS, {"chains": missing})}
    return heads


def _insert(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Ids across chains, in writing order, without a lock held to the commit: PostgreSQL's sequence (the column's
    default); on SQLite the next after the last, as the writer holds the database's write lock anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(_INSERT_EVENTS_NO_ID, rows)
        return
    last = conn.execute(select(func.coalesce(func.max(_EVENTS.c.id), 0))).scalar_one()
    conn.execute(_INSERT_EVENTS, [{**row, "id": last + n} for n, row in enumerate(rows, 1)])


def _write_pending(session: Session) -> None:
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    keys = _keys()
    secret = keys.secret(keys.newest)
    conn = session.connection()
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for entry in pending:
        by_chain.setdefault(chain_of(entry["patient_id"]), []).append(entry)
    chains = sorted(by_chain)
    heads = _lock_heads(conn, chains, keys)
    rows, moves = [], []
    for chain in chains:
        last_seq, last_hash = heads[chain]
        for entry in by_chain[chain]:
            last_seq += 1
            entry = {**entry, "chain": chain, "seq": last_seq, "key_id": keys.newest, "prev_hash": last_hash}
            entry["hash"] = last_hash = keyed_hash(secret, entry["prev_hash"], entry)
            rows.append(entry)
        moves.append({"chain_name": chain, "new_last_seq": last_seq, "new_last_hash": last_hash,
                      "new_key_id": keys.newest, "new_mac": head_mac(secret, chain, last_seq, last_hash)})
    conn.execute(_MOVE_HEAD, moves)
    _insert(conn, rows)


def _drop_pending(session: Session, transaction: Any) -> None:
    """The outermost transaction ended without commit (rollback or close): its entries go with it."""
    if transaction.parent is None:
        session.info.pop(PENDING, None)


def install(factory: sessionmaker[Session]) -> None:
    """Hook the writer into the sessions of the app's session factory (once): the entries ``record`` adds to one of
    them are written when it commits. A session of another factory refuses ``record`` (nothing would write it)."""
    # Asked of the factory itself, not of SQLAlchemy's event registry: that one is keyed by the objects' ids, and a
    # new app's session class may take the id of a collected one whose entries are still listed.
    if (factory.kw.get("info") or {}).get(AUDITED):
        return
    event.listen(factory, "before_commit", _write_pending)
    event.listen(factory, "after_transaction_end", _drop_pending)
    factory.configure(info={**(factory.kw.get("info") or {}), AUDITED: True})


# Verification ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        return f"entry {self.entry_id}: {self.problem}" if self.entry_id is not None else self.problem


_COLUMNS = ("id", "at", "actor", "action", "entity", "entity_id", "patient_id", "old", "new", "reason", "chain", "seq",
            "key_id", "prev_hash", "hash")
_ROWS = select(*(_EVENTS.c[name] for name in _COLUMNS)).order_by(_EVENTS.c.chain, _EVENTS.c.seq)
PARALLEL_FROM = 200_000         # entries in the trail from which a whole verification is shared between processes


def _expected_hash(entry: dict[str, Any], keys: AuditKeys) -> str | None:
    if entry["key_id"] is None:
        return chain_hash(entry["prev_hash"], entry) if entry["chain"] == LEGACY else None
    secret = keys.secret(entry["key_id"])
    return keyed_hash(secret, entry["prev_hash"], entry) if secret is not None else None


def _walk(rows: Iterator[tuple[Any, ...]], heads: dict[str, tuple[int, str]], keys: AuditKeys,
          starts: dict[str, tuple[int, str]] | None = None) -> tuple[int, list[Finding], set[str]]:
    """Check entries in chain order against the chains' heads. ``starts``: where each chain's check begins (a
    checkpoint's (seq, hash)); by default at its first entry. Returns (entries checked, findings, chains seen)."""
    findings: list[Finding] = []
    count, seen = 0, set()
    current, prev_hash, expected = None, GENESIS, 1

    def close(name: str, last_seq: int, last_hash: str) -> None:
        head_seq, head_hash = heads.get(name, (0, GENESIS))
        if (head_seq, head_hash) != (last_seq, last_hash):
            findings.append(Finding(None, f"chain {name} should end at its entry #{head_seq} but ends at #{last_seq}: "
                                          "entries were removed from its end, or added outside proapp"))

    for row in rows:
        entry = dict(zip(_COLUMNS, row, strict=True))
        entry_id, name, seq = entry["id"], entry["chain"], entry["seq"]
        count += 1
        if name != current:
            if current is not None:
                close(current, expected - 1, prev_hash)
            start_seq, prev_hash = (starts or {}).get(name, (0, GENESIS))
            current, expected = name, start_seq + 1
            seen.add(name)
        if seq != expected:
            findings.append(Finding(entry_id, f"entries #{expected} to #{seq - 1} of chain {name} are missing "
                                              "(removed)" if seq > expected else
                                    f"appears out of order in chain {name} (moved or inserted)"))
        if entry["prev_hash"] != prev_hash:
            findings.append(Finding(entry_id, "does not follow the entry before it (an entry was removed, inserted "
                                              "or moved here)"))
        wanted = _expected_hash(entry, keys)
        if wanted is None:
            findings.append(Finding(entry_id, f"is signed with a key proapp does not have ({entry['key_id'] or 'none'})"
                                              ": added outside proapp, or PROAPP_AUDIT_KEYS lacks an older key"))
        elif not hmac.compare_digest(wanted, entry["hash"]):
            findings.append(Finding(entry_id, "was altered after it was written (its content no longer matches its "
                                              "hash)"))
        prev_hash, expected = entry["hash"], seq + 1
    if current is not None:
        close(current, expected - 1, prev_hash)
    return count, findings, seen


def _heads(db: Session, where: Any = None) -> dict[str, tuple[int, str]]:
    q = select(_HEAD.c.chain, _HEAD.c.last_seq, _HEAD.c.last_hash)
    return {c: (seq, h) for c, seq, h in db.execute(q if where is None else q.where(where))}


def signed_heads(db: Session, keys: AuditKeys, where: Any = None) -> tuple[dict[str, tuple[int, str]], list[Finding]]:
    """Where the chains end, and a finding for each head whose MAC is not the audit key's: a head moved outside
    proapp (back over entries cut from the chain's end, or forward over entries added)."""
    q = select(_HEAD.c.chain, _HEAD.c.last_seq, _HEAD.c.last_hash, _HEAD.c.key_id, _HEAD.c.mac)
    heads, findings = {}, []
    for name, seq, digest, key_id, mac in db.execute(q if where is None else q.where(where)):
        heads[name] = (seq, digest)
        secret = keys.secret(key_id) if key_id else None
        if secret is None:
            findings.append(Finding(None, f"chain {name}: its head (entry #{seq}) is signed with a key proapp does "
                                          f"not have ({key_id or 'none'}): it was moved outside proapp, or "
                                          "PROAPP_AUDIT_KEYS lacks an older key"))
        elif not hmac.compare_digest(head_mac(secret, name, seq, digest), mac or ""):
            findings.append(Finding(None, f"chain {name}: its head (entry #{seq}) does not match its signature: it "
                                          "was moved outside proapp (entries cut from its end, or added to it)"))
    return heads, findings


def _missing_chains(heads: dict[str, tuple[int, str]], seen: set[str]) -> list[Finding]:
    return [Finding(None, f"chain {name} should end at its entry #{seq} but has no entries: they were removed")
            for name, (seq, _hash) in sorted(heads.items()) if name not in seen and seq]


def _verify_range(db: Session, low: str | None, high: str | None, keys: AuditKeys) -> tuple[int, list[Finding]]:
    """Every chain whose name is in [low, high) (None: no bound)."""
    conds = [c for c in ((_EVENTS.c.chain >= low) if low is not None else None,
                         (_EVENTS.c.chain < high) if high is not None else None) if c is not None]
    head_conds = [c for c in ((_HEAD.c.chain >= low) if low is not None else None,
                              (_HEAD.c.chain < high) if high is not None else None) if c is not None]
    heads, bad_heads = signed_heads(db, keys, and_(true(), *head_conds))
    rows = db.execute(_ROWS.where(*conds).execution_options(yield_per=5000))
    count, findings, seen = _walk(rows, heads, keys)
    return count, bad_heads + findings + _missing_chains(heads, seen)


def _verify_range_in_process(url: str, low: str | None, high: str | None,
                             keys: AuditKeys) -> tuple[int, list[Finding]]:
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            return _verify_range(db, low, high, keys)
    finally:
        engine.dispose()


def verify(db: Session, chain: str | None = None, keys: AuditKeys | None = None,
           processes: int = 1) -> tuple[int, list[Finding]]:
    """(entries checked, findings) for every chain, or for ``chain`` alone (a patient's certified copy costs that
    patient's history, whatever the size of the trial). No finding: the chains are whole.

    A whole PostgreSQL trail of more than PARALLEL_FROM entries is shared between ``processes`` processes, each
    checking the chains of one range of names (the chains are independent of each other)."""
    keys = keys or _keys()
    if chain is not None:
        heads, bad_heads = signed_heads(db, keys, _HEAD.c.chain == chain)
        rows = db.execute(_ROWS.where(_EVENTS.c.chain == chain))
        count, findings, seen = _walk(rows, heads, keys)
        return count, bad_heads + findings + _missing_chains(heads, seen)
    size = db.scalar(select(func.coalesce(func.sum(_HEAD.c.last_seq), 0))) or 0
    if processes <= 1 or size < PARALLEL_FROM or db.get_bind().dialect.name != "postgresql":
        return _verify_range(db, None, None, keys)
    names = sorted(_heads(db))
    bounds = [None, *(names[len(names) * k // processes] for k in range(1, processes)), None]
    url = db.get_bind().url.render_as_string(hide_password=False)

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_verify_range_in_process, [url] * processes, bounds[:-1], bounds[1:],
                              [keys] * processes))
    return sum(n for n, _ in parts), [f for _, found in parts for f in found]


def verify_since(db: Session, since: dict[str, list[Any]], keys: AuditKeys | None = None) -> tuple[int, list[Finding]]:
    """Check only what was appended after a checkpoint (``since``: its heads, {chain: [seq, hash]}): each chain
    whose end moved, from the checkpoint's entry on. The entries a checkpoint names are compared with it by
    ``checkpoints.check``; everything before them is covered by their hashes."""
    keys = keys or _keys()
    heads, findings = signed_heads(db, keys)        # every head, moved or not: one MAC per chain
    count = 0
    for name, (head_seq, head_hash) in sorted(heads.items()):
        start_seq, start_hash = since.get(name, (0, GENESIS))
        if (head_seq, head_hash) == (int(start_seq), start_hash):
            continue
        rows = db.execute(_ROWS.where(_EVENTS.c.chain == name, _EVENTS.c.seq > int(start_seq)))
        n, found, seen = _walk(rows, {name: (head_seq, head_hash)}, keys, {name: (int(start_seq), start_hash)})
        count += n
        findings += found
        if not seen and head_seq > int(start_seq):
            findings.append(Finding(None, f"chain {name} should end at its entry #{head_seq} but has no entries "
                                          f"after #{start_seq}: they were removed"))
    return count, findings
