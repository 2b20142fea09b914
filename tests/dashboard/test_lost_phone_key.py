"""A patient whose number was written with a phone key no longer configured: the team's page says so, instead of
failing, and a new number can be entered."""

from __future__ import annotations

from cryptography.fernet import Fernet

from tests.conftest import PHONE_KEY, make_app
from tests.dashboard.conftest import NOW, Staff, enrol, text_of


def test_the_patient_page_tells_a_number_no_key_reads(dash_app, database_url):
    with_lost = make_app(database_url, PHONE_KEYS=f"{Fernet.generate_key().decode()},{PHONE_KEY}", NOW=NOW)
    try:
        patient = enrol(with_lost, "IMA-PSL-001")
    finally:
        with_lost.extensions["proapp.engine"].dispose()
    page = Staff(dash_app, "coord_psl").get(f"/staff/patients/{patient}")
    assert page.status_code == 200
    assert "unreadable (phone key missing): ask the patient for their number" in text_of(page)
