"""Phone numbers: validated and normalised to E.164, encrypted at rest, found again by a keyed hash."""

from __future__ import annotations

import base64
import hashlib
import hmac

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SMS_CAPABLE = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


class PhoneError(ValueError):
    """The number cannot receive SMS; ``code`` says why (invalid, not_mobile)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def normalise(raw: str, region: str = "FR") -> str:
    """Return the E.164 form of ``raw`` or raise PhoneError."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise PhoneError("invalid") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid")
    if phonenumbers.number_type(number) not in SMS_CAPABLE:
        raise PhoneError("not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """+33612345678 -> +33 6 •• •• •• 78: enough for a nurse to recognise, nothing more."""
    return f"{e164[:4]} {e164[4]} •• •• •• {e164[-2:]}" if len(e164) >= 8 else "••"


class PhoneVault:
    """Encrypts phone numbers with Fernet (newest key first; older keys still decrypt)."""

    def __init__(self, keys: str):
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("no phone encryption key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        current = base64.urlsafe_b64decode(parts[0].encode())
        self._lookup_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                info=b"proapp phone lookup").derive(current)

    def encrypt(self, e164: str) -> bytes:
        return self._fernet.encrypt(e164.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise ValueError("phone number cannot be decrypted with the configured keys") from None

    def rotate(self, token: bytes) -> bytes:
        """The same number encrypted with the newest key (older keys must still be configured to read it)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise ValueError("phone number cannot be decrypted with the configured keys") from None

    def lookup(self, e164: str) -> str:
        return hmac.new(self._lookup_key, e164.encode(), hashlib.sha256).hexdigest()
