"""The proapp command: init is idempotent, enroll prints the schedule or one line and exit code 2."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from proapp.models import Occurrence, Patient, PatientContact, Site, Study, User


def count(session, model):
    session.rollback()               # a fresh snapshot of the database
    return session.scalar(select(func.count()).select_from(model))


def test_init_twice_is_safe(runner, session):
    first = runner.invoke(args=["proapp", "init"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["proapp", "init"])
    assert second.exit_code == 0, second.output
    assert "database at the newest schema" in second.output
    assert count(session, Study) == 2
    assert count(session, Site) == 11


def enroll_args(**kw):
    args = {"study": "ADUSE", "site": "TLS", "subject": "ADU-TLS-001", "phone": "+33612345678",
            "language": "fr", "anchor-date": (date.today() - timedelta(days=1)).isoformat(),
            "agreed-on": (date.today() - timedelta(days=1)).isoformat()}
    args.update(kw)
    out = ["proapp", "enroll"]
    for k, v in args.items():
        out += [f"--{k}", v]
    return out


def test_enroll_prints_the_schedule_and_stores_the_patient(runner, session):
    result = runner.invoke(args=enroll_args(timezone="Indian/Reunion", hour="9"))
    assert result.exit_code == 0, result.output
    assert "enrolled ADU-TLS-001 (ADUSE/TLS), time zone Indian/Reunion" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("W")]
    assert [line.split()[0] for line in lines][:3] == ["W0", "W1", "W2"]
    patient = session.scalar(select(Patient))
    assert (patient.subject_id, patient.timezone, patient.sms_hour, patient.language) == (
        "ADU-TLS-001", "Indian/Reunion", 9, "fr")
    assert count(session, Occurrence) == 18


@pytest.mark.parametrize(("change", "message"), [
    ({"phone": "0612"}, "phone: This is not a valid phone number."),
    ({"phone": "+33512345678"}, "phone: This number cannot receive SMS"),
    ({"subject": "ADU-TLS-01"}, "subject_id: Subject ID ADU-TLS-01 does not follow the study's pattern "
                                "(for example ADU-TLS-001)."),
    ({"subject": "IMA-TLS-001"}, "subject_id"),
    ({"site": "BDX"}, "site: Unknown site BDX for study ADUSE."),
    ({"study": "SCLERO"}, "study: Unknown study SCLERO."),
    ({"language": "de"}, "language: Language must be fr or en."),
    ({"timezone": "Europe/Tolouse"}, "timezone: Unknown time zone Europe/Tolouse"),
    ({"hour": "23"}, "sms_hour: The SMS hour must be between 8 and 20"),
    ({"anchor-date": "2026-13-01"}, "--anchor-date '2026-13-01' is not a date"),
    ({"anchor-date": "2019-01-01"}, "anchor_date: The anchor date must be within two years"),
])
def test_enroll_errors_are_one_line_exit_2_and_store_nothing(runner, session, change, message):
    result = runner.invoke(args=enroll_args(**change))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {message}"] or (len(lines) == 1 and lines[0].startswith(f"error: {message}"))
    assert count(session, Patient) == 0
    assert count(session, PatientContact) == 0
    assert count(session, Occurrence) == 0


def test_duplicate_subject_is_refused_and_the_first_is_untouched(runner, session):
    assert runner.invoke(args=enroll_args()).exit_code == 0
    result = runner.invoke(args=enroll_args(phone="+33698765432"))
    assert result.exit_code == 2
    assert result.output.strip() == "error: subject_id: Subject ADU-TLS-001 is already enrolled in ADUSE."
    assert count(session, Patient) == 1
    assert count(session, Occurrence) == 18


@pytest.mark.requirement("PERSONAL-DATA")
def test_national_number_is_normalised_and_encrypted(runner, session, app):
    assert runner.invoke(args=enroll_args(phone="06 12 34 56 78")).exit_code == 0
    contact = session.scalar(select(PatientContact))
    assert b"0612345678" not in contact.phone_ciphertext and b"612345678" not in contact.phone_ciphertext
    vault = app.extensions["proapp.phones"]
    assert vault.decrypt(contact.phone_ciphertext) == "+33612345678"
    assert contact.phone_lookup == vault.lookup("+33612345678")


def test_windows_already_closed_at_enrolment_are_cancelled(runner, session):
    anchor = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()
    assert runner.invoke(args=enroll_args(**{"anchor-date": anchor})).exit_code == 0
    states = {o.visit_code: o.status.value for o in session.scalars(select(Occurrence))}
    assert states["W0"] == states["W1"] == states["W4"] == "cancelled"
    assert states["W7"] == states["W16"] == "scheduled"


def test_schedule_command(runner):
    runner.invoke(args=enroll_args())
    result = runner.invoke(args=["proapp", "schedule", "ADU-TLS-001"])
    assert result.exit_code == 0
    assert "W16Q" in result.output
    missing = runner.invoke(args=["proapp", "schedule", "ADU-TLS-999"])
    assert (missing.exit_code, missing.output.strip()) == (2, "error: no patient ADU-TLS-999")


def test_demo_creates_an_admin_and_patients_with_a_window_open_now(runner, session):
    result = runner.invoke(args=["proapp", "demo"])
    assert result.exit_code == 0, result.output
    assert "demo admin: admin@demo.invalid / password: " in result.output
    now = datetime.now(UTC)
    patients = list(session.scalars(select(Patient)))
    assert len(patients) == 6
    assert {p.timezone for p in patients} == {"Europe/Paris", "Indian/Reunion", "America/Guadeloupe"}
    assert {(p.study.code, p.language) for p in patients} == {("ADUSE", "fr"), ("ADUSE", "en"),
                                                                ("IMATINIB-SSC", "fr"), ("IMATINIB-SSC", "en")}
    for p in patients:
        assert any(o.is_open(now) for o in p.occurrences), p.subject_id
    again = runner.invoke(args=["proapp", "demo"])
    assert again.exit_code == 0
    assert count(session, Patient) == 6
    assert count(session, User) == 1
    # The patient injected today has the treated ulcer the team noted, to confirm in the baseline (W0).
    from proapp.questionnaire.models import NotedUlcer

    [noted] = session.execute(select(NotedUlcer.number, NotedUlcer.treated, Patient.subject_id)
                              .join(Patient, Patient.id == NotedUlcer.patient_id)).all()
    assert tuple(noted) == (1, True, "ADU-TLS-903")


def test_user_create_reads_password_from_stdin(runner, session):
    result = runner.invoke(args=["proapp", "user", "create", "--email", "Nurse@CHU.fr", "--role", "coordinator",
                                 "--study", "ADUSE", "--site", "TLS"], input="a long enough password\n")
    assert result.exit_code == 0, result.output
    user = session.scalar(select(User))
    assert user.email == "nurse@chu.fr"
    assert user.password_hash.startswith("scrypt:")
    short = runner.invoke(args=["proapp", "user", "create", "--email", "b@chu.fr", "--role", "admin"], input="x\n")
    assert short.exit_code == 2
    assert "at least 12 characters" in short.output


def test_instruments_command_lists_validation_status(runner):
    result = runner.invoke(args=["proapp", "instruments"])
    assert "DLQI 1.0: 11 items; en NOT VALIDATED, fr NOT VALIDATED" in result.output


def test_the_documented_configuration_table_is_the_generated_one(runner):
    from pathlib import Path

    table = runner.invoke(args=["proapp", "config-table"]).output.strip()
    docs = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    assert table in docs


def test_enroll_with_a_voice_channel_asks_the_pin_hidden_and_refuses_a_bad_one(runner, session):
    """The PIN typed with the patient is asked, never an option; a bad one is one line, exit 2."""
    from werkzeug.security import check_password_hash

    bad = runner.invoke(args=enroll_args(channel="voice"), input="1234\n")
    assert bad.exit_code == 2 and "error: voice_pin: This PIN is too easy to guess" in bad.output
    assert count(session, Patient) == 0
    sms = runner.invoke(args=enroll_args(channel="sms"))
    assert sms.exit_code == 2 and "error: sms_agreed: Tick the box" in sms.output
    result = runner.invoke(args=enroll_args(channel="voice"), input="4071\n")
    assert result.exit_code == 0, result.output
    assert "4071" not in result.output
    patient = session.scalar(select(Patient))
    session.refresh(patient)
    assert patient.answer_channel == "voice"
    assert check_password_hash(session.get(PatientContact, patient.id).voice_pin_hash, "4071")
