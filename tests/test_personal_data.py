"""Phone numbers: never in clear in the database, the logs or any export; key rotation; erasure after follow-up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from proapp import db
from proapp.patients.models import PatientContact
from proapp.patients.phones import PhoneVault
from tests.conftest import PHONE_KEY, fresh_app, make_app
from tests.export.conftest import auth, complete_diary, make_key

pytestmark = pytest.mark.requirement("PERSONAL-DATA")

NUMBER = "+33612345678"
FORMS = (NUMBER, "0612345678", "06 12 34 56 78", "612345678")


def _dump(app) -> str:
    """Every row of every table, as text."""
    out = []
    with app.app_context():
        conn = db.session().connection()
        from proapp.db import Base

        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                out.append(repr(tuple(row)))
    return "\n".join(out)


def test_the_number_is_nowhere_in_clear(app, caplog):
    caplog.set_level(logging.DEBUG)
    pid = complete_diary(app, "ADU-TLS-001")
    runner = app.test_cli_runner()
    runner.invoke(args=["proapp", "tick"])
    runner.invoke(args=["proapp", "sms", "log", "ADU-TLS-001"])
    key = make_key(app)
    client = app.test_client()
    exports = [client.get(f"/api/v1/studies/ADUSE/responses?format={f}", headers=auth(key)).get_data(as_text=True)
               for f in ("json", "csv", "odm", "fhir")]
    exports.append(client.get("/api/v1/studies/ADUSE/metadata", headers=auth(key)).get_data(as_text=True))
    exports += [client.get(f"/api/v1/studies/ADUSE/ulcers?format={f}", headers=auth(key)).get_data(as_text=True)
                for f in ("json", "csv", "odm", "fhir", "redcap")]
    dump = _dump(app)
    for form in FORMS:
        assert form not in dump, form
        assert form not in caplog.text, form
        for body in exports:
            assert form not in body, form
    with app.app_context():
        contact = db.session().get(PatientContact, pid)
        assert app.extensions["proapp.phones"].decrypt(contact.phone_ciphertext) == NUMBER


def test_key_rotation_re_encrypts_every_number(database_url, instance_dir):
    new_key = Fernet.generate_key().decode()
    app = fresh_app(database_url)                       # numbers written with PHONE_KEY
    try:
        pid = complete_diary(app, "ADU-TLS-001")
    finally:
        app.extensions["proapp.engine"].dispose()
    rotated = make_app(database_url, PHONE_KEYS=f"{new_key},{PHONE_KEY}")
    try:
        result = rotated.test_cli_runner().invoke(args=["proapp", "phones", "rotate"])
        assert result.exit_code == 0 and "1 numbers re-encrypted" in result.output
        with rotated.app_context():
            contact = db.session().get(PatientContact, pid)
            only_new = PhoneVault(new_key)
            assert only_new.decrypt(contact.phone_ciphertext) == NUMBER
            assert contact.phone_lookup == only_new.lookup(NUMBER)
            from proapp.audit.models import AuditEvent

            assert db.session().scalar(select(AuditEvent.new).where(AuditEvent.action == "phones.rotated")) == {
                "rotated": 1, "unreadable": 0}
    finally:
        rotated.extensions["proapp.engine"].dispose()
    unreadable = make_app(database_url, PHONE_KEYS=Fernet.generate_key().decode())
    try:
        result = unreadable.test_cli_runner().invoke(args=["proapp", "phones", "rotate"])
        assert result.exit_code == 1 and "1 could not be read" in result.output
    finally:
        unreadable.extensions["proapp.engine"].dispose()


def test_purge_erases_numbers_once_follow_up_ended(app):
    from tests.dashboard.helpers import enrol_at

    now = datetime.now(UTC)
    ended = enrol_at(app, "IMA-PSL-001", now - timedelta(days=400))        # every window closed
    active = enrol_at(app, "IMA-PSL-002", now - timedelta(days=10))
    withdrawn = enrol_at(app, "IMA-PSL-003", now - timedelta(days=10))
    with app.app_context():
        s = db.session()
        from proapp.patients.models import Patient, PatientStatus

        s.get(Patient, withdrawn).status = PatientStatus.WITHDRAWN
        s.commit()
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["proapp", "purge-contacts", "--dry-run"])
    assert dry.output.strip() == "would erase 2 phone number(s): IMA-PSL-001, IMA-PSL-003"
    assert runner.invoke(args=["proapp", "purge-contacts"]).exit_code == 0
    with app.app_context():
        s = db.session()
        kept = {pid: s.get(PatientContact, pid).phone_ciphertext is not None for pid in (ended, active, withdrawn)}
        assert kept == {ended: False, active: True, withdrawn: False}
        assert s.get(PatientContact, ended).unusable_reason == "erased after follow-up"
        n = s.execute(text("SELECT COUNT(*) FROM audit_event WHERE action = 'patient.contact_erased'")).scalar()
        assert n == 2
    assert runner.invoke(args=["proapp", "purge-contacts"]).output.strip() == "erased 0 phone number(s)"
