"""Logging that never writes a link token: every log the project configures goes through `RedactTokens`.

A patient's SMS link is ``/s/<token>``: whoever reads the token can answer in the patient's name while the window
is open (a staff invitation or reset link, ``/staff/welcome/<token>`` or ``/staff/reset/<token>``, would set an
account's password). The web server's request log (werkzeug in development, gunicorn in production), the app's
own log and the worker's log all pass their records through this filter, which writes ``/s/[redacted]`` instead.
The links the demo prints and the console gateways' lists at ``/dev/sms`` and ``/dev/mail`` are the development
exception: they are the messages themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from flask.logging import default_handler

REDACTED = "[redacted]"
# Paths whose last part is a secret: the patient's SMS link, a staff invitation or password reset link.
_SECRET_PATH = re.compile(r"(/s/|/staff/welcome/|/staff/reset/)[^\s\"'?#/]+")


def redact(text: str) -> str:
    """``text`` with every link token replaced by ``[redacted]``."""
    return _SECRET_PATH.sub(r"\1" + REDACTED, text) if ("/s/" in text or "/staff/" in text) else text


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Rewrites a record's message and arguments (a tuple, or the dict of gunicorn's access log) before any
    handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, MutableMapping):
            # In place: gunicorn's access log passes its SafeAtoms, a dict that answers "-" for a header the
            # request lacks (X-Forwarded-For of a direct /readyz); a plain copy would lose the line to a KeyError.
            for key, value in record.args.items():
                record.args[key] = _clean(value)
        elif isinstance(record.args, Mapping):
            record.args = {key: _clean(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_clean(value) for value in record.args)
        return True


def redact_logger(logger: logging.Logger) -> None:
    """Install the filter on ``logger`` (records logged on it) and on its handlers (records its children pass
    up to them), once."""
    for target in (logger, *logger.handlers):
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(RedactTokens())


def install(app_logger: logging.Logger) -> None:
    """The web app's logs: Flask's (``Exception on /s/... [GET]``) and the development server's request log."""
    redact_logger(app_logger)
    redact_logger(logging.getLogger("werkzeug"))


def configure_worker_logging() -> None:
    """The worker's log: INFO from proapp, warnings from the libraries. The Twilio SDK logs every request's
    parameters at INFO (phone numbers and message bodies with their links): never below WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("proapp").removeHandler(default_handler)     # the root handler above writes each line once
    for name in ("apscheduler", "twilio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").addFilter(_SkippedRun())
    redact_logger(logging.getLogger())


class _SkippedRun(logging.Filter):
    """A job still running at its next turn (a long batch) is normal: APScheduler's WARNING "maximum number of
    running instances reached" becomes INFO, so WARNING means something is wrong (a channel keeps failing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "maximum number of running instances" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True
