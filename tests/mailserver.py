"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for the mail tests."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)       # answers for the next DATA commands, e.g. "451 later"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in m["To"]]

    def all(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            if self.refuse:
                return self.refuse.pop(0)
            self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server(auth: tuple[str, str] | None = None, tls: tuple[str, str] | None = None) -> Iterator[Inbox]:
    """``auth``: the one user and password the server accepts, after STARTTLS with ``tls`` (certificate and key
    files)."""
    inbox = Inbox(port=free_port())
    options: dict = {}
    if tls is not None:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        options.update(tls_context=context, require_starttls=True)
    if auth is not None:
        from aiosmtpd.smtp import AuthResult

        def authenticator(server, session, envelope, mechanism, data) -> AuthResult:
            ok = data is not None and (data.login.decode(), data.password.decode()) == auth
            return AuthResult(success=ok, handled=False)

        options.update(authenticator=authenticator, auth_require_tls=True, auth_required=True)
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port, **options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
