"""The patient's first SMS names the information on their data and rights (on the page its link opens); the
next ones are the usual short texts."""

from __future__ import annotations

import pytest

from tests.questionnaire.helpers import text
from tests.sms.conftest import enrol
from tests.sms.test_outbox import W0_ANCHOR, local, tick, worker  # noqa: F401  (the worker fixture)

pytestmark = pytest.mark.requirement("INFORMED")


def test_only_the_first_sms_names_the_information_and_its_page_links_to_it(sms_app, worker, fake_twilio):  # noqa: F811
    enrol(sms_app, "ADU-TLS-401", W0_ANCHOR)
    tick(worker, local(2026, 3, 16, 10))                        # W0 invitation: the first SMS
    tick(worker, local(2026, 3, 24, 10))                        # W1 invitation
    first, second = (m.body for m in fake_twilio.messages.values())
    assert first.startswith("SuiviPRO : 1er questionnaire, jusqu'au 16/03 inclus. Vos données et droits : voir "
                            "https://pro.example.test/s/")
    assert second.startswith("SuiviPRO : votre questionnaire de suivi est disponible jusqu'au 27/03 inclus : ")
    client = sms_app.test_client()
    opened = client.get(second.rsplit(" ", 1)[1].removeprefix("https://pro.example.test"), follow_redirects=True)
    assert 'href="/q/information"' in opened.get_data(as_text=True)
    assert "Vos données et vos droits" in text(client.get("/q/information").get_data(as_text=True))
