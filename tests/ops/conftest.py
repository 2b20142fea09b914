"""Operations tests use the SMS fixtures: a fake Twilio on 127.0.0.1 and an app wired to it."""

from tests.sms.conftest import fake_twilio, sms_app  # noqa: F401
