from tests.alerts.conftest import smtp  # noqa: F401  (the SMTP server fixture)
from tests.sms.conftest import fake_twilio  # noqa: F401
