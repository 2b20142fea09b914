"""The audit trail's keys: ``PROAPP_AUDIT_KEYS`` holds ``<key id>:<secret>`` pairs, comma-separated, newest first.
Each secret is at least 32 random bytes, written as hex or URL-safe base64. New entries are chained with the
newest key; every key listed stays usable to verify the entries made with it (rotation: put the new key first,
keep the old ones)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIN_SECRET_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,20}$")


class AuditKeyError(ValueError):
    pass


@dataclass(frozen=True)
class AuditKeys:
    newest: str
    secrets: dict[str, bytes]

    def secret(self, key_id: str) -> bytes | None:
        return self.secrets.get(key_id)


def _decode(text: str) -> bytes:
    if re.fullmatch(r"[0-9a-fA-F]+", text) and len(text) % 2 == 0:
        return bytes.fromhex(text)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise AuditKeyError("a secret is neither hex nor URL-safe base64") from exc


def parse(value: str) -> AuditKeys:
    """The keys of a ``PROAPP_AUDIT_KEYS`` value, or AuditKeyError saying what is wrong (never the secret)."""
    found: dict[str, bytes] = {}
    order: list[str] = []
    for part in (p.strip() for p in (value or "").split(",") if p.strip()):
        key_id, sep, text = part.partition(":")
        if not sep or not KEY_ID.match(key_id):
            raise AuditKeyError("each key is <key id>:<secret>, the id of 1 to 20 letters, digits, '.', '_' or '-'")
        if key_id in found:
            raise AuditKeyError(f"the key id {key_id} is listed twice")
        secret = _decode(text)
        if len(secret) < MIN_SECRET_BYTES:
            raise AuditKeyError(f"the secret of key {key_id} has {len(secret)} bytes; at least {MIN_SECRET_BYTES}")
        found[key_id] = secret
        order.append(key_id)
    if not order:
        raise AuditKeyError("no key")
    return AuditKeys(order[0], found)


def key_problems(cfg: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``PROAPP_AUDIT_KEYS`` (start-up and ``proapp check``)."""
    if not cfg.get("AUDIT_KEYS"):
        return ["PROAPP_AUDIT_KEYS is missing (generate one with: "
                "python -c 'import secrets; print(\"k1:\" + secrets.token_hex(32))'); keep it outside the database."]
    try:
        parse(cfg["AUDIT_KEYS"])
    except AuditKeyError as exc:
        return [f"PROAPP_AUDIT_KEYS: {exc}."]
    return []


def generate(key_id: str = "dev1") -> str:
    """A new ``<key id>:<secret>`` value (64 hex digits: 32 random bytes)."""
    return f"{key_id}:{secrets.token_hex(MIN_SECRET_BYTES)}"
