"""A closed study's archive: one zip file, signed with the audit key, verifiable offline with the archive and the
key alone (``proapp study verify-archive FILE``), long after the live data is gone.

Two seals, both HMAC-SHA-256 under a key of ``PROAPP_AUDIT_KEYS`` (the key that signs the audit trail's
checkpoints and heads):

- ``SHA256SUMS``, the manifest: the SHA-256 of every member, one ``<hex>  <name>`` line each (``sha256sum -c``
  reads it), and ``SIGNATURE``, the manifest's HMAC with the key's id: which member was altered, added or removed;
- the zip's comment, ``proapp-archive-seal:<key id>:<hmac>``: the HMAC of every byte of the file before the comment,
  so that any byte changed anywhere (a member, a header, a date) is named too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import sys
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from proapp.audit.keys import AuditKeyError, AuditKeys, parse

FORMAT = "proapp-study-archive/1"
SUMS = "SHA256SUMS"
SIGNATURE = "SIGNATURE"
SEAL = re.compile(rb"^proapp-archive-seal:([A-Za-z0-9_.-]{1,20}):([0-9a-f]{64})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def _mac(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(path: Path, members: Iterable[tuple[str, bytes]], keys: AuditKeys, now: datetime) -> str:
    """Write the archive at ``path`` (a file beside it first, renamed once complete and on disk: an interrupted
    write leaves no archive, never half of one). Returns the file's SHA-256."""
    key_id, secret = keys.newest, keys.secret(keys.newest)
    assert secret is not None
    stamp = now.astimezone(UTC).timetuple()[:6]
    partial = path.with_name(path.name + ".partial")
    sums: list[str] = []
    seen: set[str] = set()
    placeholder = f"proapp-archive-seal:{key_id}:{'0' * 64}".encode()
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            if not NAME.match(name) or name in seen or name in (SUMS, SIGNATURE):
                raise ValueError(f"{name!r} cannot be an archive member")
            seen.add(name)
            zf.writestr(zipfile.ZipInfo(name, stamp), data, compress_type=zipfile.ZIP_DEFLATED)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
        manifest = "".join(sums).encode()
        zf.writestr(zipfile.ZipInfo(SUMS, stamp), manifest, compress_type=zipfile.ZIP_DEFLATED)
        signature = {"format": FORMAT, "signed": SUMS, "algorithm": "HMAC-SHA256", "key_id": key_id,
                     "hmac": _mac(secret, manifest)}
        zf.writestr(zipfile.ZipInfo(SIGNATURE, stamp), json.dumps(signature, indent=1).encode() + b"\n",
                    compress_type=zipfile.ZIP_DEFLATED)
        zf.comment = placeholder
    with partial.open("r+b") as fh:                     # the seal: every byte before the comment
        data = fh.read()
        assert data.endswith(placeholder)
        body = data[:-len(placeholder)]
        fh.seek(len(body))
        fh.write(f"proapp-archive-seal:{key_id}:{_mac(secret, body)}".encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
    return sha256_file(path)


@dataclass
class Verdict:
    members: int = 0
    key_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(path: Path, keys: AuditKeys) -> Verdict:
    """Check the archive with the key alone: the seal over the whole file, the manifest's signature, every
    member's SHA-256, and that no member was added or removed. Never raises on a damaged file: says so."""
    out = Verdict()
    try:
        data = path.read_bytes()
    except OSError as exc:
        out.problems.append(f"the archive cannot be read: {exc.strerror or exc}")
        return out
    try:
        with zipfile.ZipFile(path) as zf:
            comment, names = zf.comment, zf.namelist()
            _check_seal(data, comment, keys, out)
            if len(set(names)) != len(names):
                out.problems.append("a member appears twice in the archive")
            if SUMS not in names or SIGNATURE not in names:
                out.problems.append(f"the archive has no {SUMS} or no {SIGNATURE}: it is not a proapp archive")
                return out
            manifest = zf.read(SUMS)
            _check_signature(manifest, zf.read(SIGNATURE), keys, out)
            listed: dict[str, str] = {}
            for n, line in enumerate(manifest.decode("utf-8").splitlines(), 1):
                digest, sep, name = line.partition("  ")
                if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or name in listed:
                    out.problems.append(f"line {n} of {SUMS} is not '<sha256>  <member>'")
                    continue
                listed[name] = digest
            for name, digest in listed.items():
                if name not in names:
                    out.problems.append(f"{name}: listed in {SUMS} but missing from the archive (removed)")
                    continue
                try:
                    content = zf.read(name)
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    out.problems.append(f"{name}: damaged ({exc})")
                    continue
                if hashlib.sha256(content).hexdigest() != digest:
                    out.problems.append(f"{name}: its content differs from its SHA-256 in {SUMS} (altered)")
                out.members += 1
            for name in names:
                if name not in listed and name not in (SUMS, SIGNATURE):
                    out.problems.append(f"{name}: not listed in {SUMS} (added)")
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, ValueError) as exc:
        out.problems.append(f"the archive is not a readable zip file: {exc}")
    return out


def _check_seal(data: bytes, comment: bytes, keys: AuditKeys, out: Verdict) -> None:
    found = SEAL.match(comment or b"")
    if found is None or not data.endswith(comment):
        out.problems.append("the archive's seal (its zip comment) is missing or altered")
        return
    key_id = found.group(1).decode()
    secret = keys.secret(key_id)
    if secret is None:
        out.problems.append(f"the archive is sealed with key {key_id}, which PROAPP_AUDIT_KEYS does not hold")
        return
    if not hmac.compare_digest(_mac(secret, data[:-len(comment)]), found.group(2).decode()):
        out.problems.append("the archive's bytes do not match its seal: the file was altered after it was written")


def _check_signature(manifest: bytes, raw: bytes, keys: AuditKeys, out: Verdict) -> None:
    try:
        signature = json.loads(raw)
        key_id, mac = str(signature["key_id"]), str(signature["hmac"])
    except (ValueError, KeyError, TypeError):
        out.problems.append(f"{SIGNATURE} is not a signature")
        return
    out.key_id = key_id
    secret = keys.secret(key_id)
    if secret is None:
        out.problems.append(f"{SUMS} is signed with key {key_id}, which PROAPP_AUDIT_KEYS does not hold")
    elif not hmac.compare_digest(_mac(secret, manifest), mac):
        out.problems.append(f"{SUMS} does not match its signature (the manifest was altered)")


def main(argv: list[str] | None = None) -> int:
    """``python -m proapp.closure.archive FILE``: the verification with nothing but the archive and
    ``PROAPP_AUDIT_KEYS`` in the environment (no configuration, no database, no Flask app)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m proapp.closure.archive FILE (with PROAPP_AUDIT_KEYS set)", file=sys.stderr)
        return 2
    try:
        keys = parse(os.environ.get("PROAPP_AUDIT_KEYS", ""))
    except AuditKeyError as exc:
        print(f"error: PROAPP_AUDIT_KEYS: {exc}", file=sys.stderr)
        return 2
    verdict = verify(Path(args[0]), keys)
    for problem in verdict.problems:
        print(f"TAMPERED: {problem}")
    if verdict.problems:
        print(f"{len(verdict.problems)} problem(s): the archive is not as it was signed")
        return 1
    print(f"archive intact: {verdict.members} members, manifest and seal signed with key {verdict.key_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
