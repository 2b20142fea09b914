"""What coordinators see: the completion matrix, the patients list with its filters, the CSV download."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import event, select

from proapp import db
from proapp.accounts.access import Viewer
from proapp.dashboard import queries
from proapp.patients.models import PatientContact
from tests.dashboard.conftest import NOW, Staff, enrol, text_of
from tests.dashboard.helpers import complete, enrol_at


def _cohort(app):
    """IMATINIB M0 (the baseline at inclusion): all completed but B. M1 (day 30, window day 23-37): A completed,
    B missed (number unusable), C open and past its target day, E open before it (SMS paused), D at BSA missed."""
    ids = {
        "A": enrol_at(app, "IMA-PSL-001", NOW - timedelta(days=45)),
        "B": enrol_at(app, "IMA-PSL-002", NOW - timedelta(days=45)),
        "C": enrol_at(app, "IMA-PSL-003", NOW - timedelta(days=33)),
        "E": enrol_at(app, "IMA-PSL-004", NOW - timedelta(days=25)),
        "D": enrol_at(app, "IMA-BSA-001", NOW - timedelta(days=45), site="BSA"),
    }
    for who in ("A", "C", "E", "D"):                  # the baseline at inclusion; B missed it
        complete(app, ids[who], "M0", {"DLQI": {"total": 14}, "HAQ": {"haq_di": 1.5}})
    complete(app, ids["A"], "M1", {"DLQI": {"total": 12}, "HAQ": {"haq_di": 1.25}})
    with app.app_context():
        s = db.session()
        s.get(PatientContact, ids["B"]).usable = False
        s.get(PatientContact, ids["E"]).sms_paused_at = NOW
        s.commit()
    return ids


def test_completion_matrix_counts_and_highlights_sites_behind(dash_app):
    _cohort(dash_app)
    with dash_app.app_context():
        admin = Viewer(1, "a", "admin", ())
        [ov] = [o for o in queries.overview(db.session(), admin, dash_app.extensions["proapp.studies"], NOW, "en", 80)
                if o.study.code == "IMATINIB-SSC"]
        psl = next(s.id for s in ov.sites if s.code == "PSL")
        bsa = next(s.id for s in ov.sites if s.code == "BSA")
        c = ov.cell("M1", psl)
        assert (c.expected, c.completed, c.missed, c.open, c.percent) == (4, 1, 1, 2, 50)
        d = ov.cell("M1", bsa)
        assert (d.expected, d.completed, d.missed, d.open, d.percent) == (1, 0, 1, 0, 0)
        assert ov.cell("M3", psl).expected == 0                       # not open yet for anyone
        m0 = ov.cell("M0", psl)
        assert (m0.expected, m0.completed, m0.missed, m0.percent) == (4, 3, 1, 75)
        assert (ov.total.expected, ov.total.completed, ov.total.missed, ov.total.percent) == (10, 5, 3, 62)
        assert ov.behind == {psl, bsa}
    page = text_of(Staff(dash_app, "admin").get("/staff/"))
    assert "1/4 · 50% of 2 finished 1 missed 2 open" in page        # the rate says what it counts
    assert "BSA behind" in page
    assert "ADUSE" in page and "IMATINIB-SSC" in page


def test_a_coordinator_matrix_holds_only_their_site(dash_app):
    _cohort(dash_app)
    page = Staff(dash_app, "coord_psl").get("/staff/").get_data(as_text=True)
    assert ">PSL" in page and ">BSA" not in page and "ADUSE" not in page


def _subjects(resp) -> list[str]:
    return re.findall(r">(IMA-[A-Z]{3}-\d{3})</a>", resp.get_data(as_text=True))


def test_patients_list_filters_and_flags(dash_app):
    _cohort(dash_app)
    staff = Staff(dash_app, "admin")
    assert _subjects(staff.get("/staff/patients")) == ["IMA-BSA-001", "IMA-PSL-001", "IMA-PSL-002", "IMA-PSL-003",
                                                       "IMA-PSL-004"]
    assert _subjects(staff.get("/staff/patients?flag=overdue")) == ["IMA-PSL-003"]
    assert _subjects(staff.get("/staff/patients?flag=missed")) == ["IMA-BSA-001", "IMA-PSL-002"]
    assert _subjects(staff.get("/staff/patients?flag=sms_problem")) == ["IMA-PSL-002"]
    assert _subjects(staff.get("/staff/patients?flag=sms_stopped")) == ["IMA-PSL-004"]
    assert _subjects(staff.get("/staff/patients?site=BSA")) == ["IMA-BSA-001"]
    assert _subjects(staff.get("/staff/patients?q=psl-00")) == ["IMA-PSL-001", "IMA-PSL-002", "IMA-PSL-003",
                                                               "IMA-PSL-004"]
    assert _subjects(staff.get("/staff/patients?q=%25_")) == []       # LIKE wildcards are searched literally
    assert _subjects(staff.get("/staff/patients?study=ADUSE")) == []
    assert _subjects(staff.get("/staff/patients?status=withdrawn")) == []
    row = re.search(r"IMA-PSL-001</a>.*?</tr>", staff.get("/staff/patients").get_data(as_text=True), re.S).group(0)
    assert "100%" in row and "M3" in row                               # completion and next window
    row = re.search(r"IMA-PSL-002</a>.*?</tr>", staff.get("/staff/patients").get_data(as_text=True), re.S).group(0)
    assert "0%" in row and "SMS problem" in row and "Missed a window" in row


def test_bad_filter_values_give_an_empty_list_not_an_error(dash_app):
    staff = Staff(dash_app, "admin")
    for query in ("page=abc", "page=-3", "page=99999999999", "flag=nope", "status=zz", "study=<script>",
                  "q=" + "x" * 500, "page=²", "page=０"):
        assert staff.get(f"/staff/patients?{query}").status_code == 200, query
    assert staff.get("/staff/patients?status=%00").status_code == 400          # a NUL byte: refused up front


def test_patients_list_is_paginated(dash_app):
    for n in range(1, 56):
        enrol(dash_app, f"IMA-PSL-{n:03d}")
    staff = Staff(dash_app, "admin")
    first = staff.get("/staff/patients")
    assert len(_subjects(first)) == 50
    assert "55 patients" in text_of(first) and "page 1 of 2" in text_of(first)
    second = staff.get("/staff/patients?page=2")
    assert _subjects(second) == [f"IMA-PSL-{n:03d}" for n in range(51, 56)]
    assert 'rel="prev"' in second.get_data(as_text=True)


def test_completion_csv_has_one_row_per_occurrence_of_the_user_sites(dash_app):
    ids = _cohort(dash_app)
    complete(dash_app, ids["C"], "M1", {}, on_site=True)
    resp = Staff(dash_app, "coord_psl").get("/staff/studies/IMATINIB-SSC/completion.csv")
    assert resp.mimetype == "text/csv"
    assert 'filename="completion-IMATINIB-SSC-2026-03-10.csv"' in resp.headers["Content-Disposition"]
    body = resp.get_data(as_text=True)
    assert body.startswith("\ufeff")                       # UTF-8 with a BOM: Excel reads the accents
    rows = list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))
    assert {r["site"] for r in rows} == {"PSL"}
    french = Staff(dash_app, "coord_psl").get("/staff/studies/IMATINIB-SSC/completion.csv?sep=semicolon")
    semicolons = list(csv.DictReader(io.StringIO(french.get_data(as_text=True).removeprefix("\ufeff")),
                                     delimiter=";"))
    assert semicolons == rows
    assert len(rows) == 4 * 5                                          # four PSL patients, five visits each
    by = {(r["subject_id"], r["visit"]): r for r in rows}
    assert by[("IMA-PSL-001", "M1")]["state"] == "completed"
    assert by[("IMA-PSL-002", "M1")]["state"] == "missed"
    assert by[("IMA-PSL-003", "M1")]["completed_on_site"] == "yes"
    assert by[("IMA-PSL-004", "M1")]["state"] == "open"
    assert by[("IMA-PSL-001", "M3")]["state"] == "upcoming"
    assert "phone" not in resp.get_data(as_text=True) and "+336" not in resp.get_data(as_text=True)
    everyone = Staff(dash_app, "monitor").get("/staff/studies/IMATINIB-SSC/completion.csv").get_data(as_text=True)
    assert "IMA-BSA-001" in everyone
    assert Staff(dash_app, "admin").get("/staff/studies/NOPE/completion.csv").status_code == 404
    assert Staff(dash_app, "admin").get("/staff/studies/IMATINIB-SSC/completion.csv?site=ZZZ").status_code == 404


def _statements(app, staff: Staff, path: str) -> int:
    engine = app.extensions["proapp.engine"]
    count = [0]

    def on_execute(*_args):
        count[0] += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        assert staff.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return count[0]


def test_sql_statements_per_page_do_not_grow_with_patients(dash_app):
    _cohort(dash_app)
    staff = Staff(dash_app, "admin")
    pages = ("/staff/", "/staff/patients", "/staff/patients?flag=overdue", "/staff/patients?q=IMA")
    small = {p: _statements(dash_app, staff, p) for p in pages}
    for n in range(10, 70):
        enrol(dash_app, f"IMA-PSL-{n:03d}")
    large = {p: _statements(dash_app, staff, p) for p in pages}
    assert small == large
    assert max(large.values()) <= 12


def test_the_patient_contact_is_never_in_a_list_page(dash_app):
    ids = _cohort(dash_app)
    staff = Staff(dash_app, "admin")
    for path in ("/staff/", "/staff/patients"):
        assert "+3361" not in staff.get(path).get_data(as_text=True)
    page = staff.get(f"/staff/patients/{ids['A']}").get_data(as_text=True)
    assert "+336 1 •• •• •• 78" in page and "+33612345678" not in page
    with dash_app.app_context():
        assert db.session().scalar(select(PatientContact.phone_ciphertext).limit(1)) is not None


def test_french_pages_use_french_plurals_percent_and_names(dash_app):
    ids = _cohort(dash_app)
    staff = Staff(dash_app, "coord_psl")
    staff.post("/language", data={"lang": "fr", "next": "/staff/"})
    resp = staff.get("/staff/")
    page = text_of(resp)
    assert "1/4 · 50 % sur 2 terminées 1 manquée 2 ouvertes" in page    # not "1 manquées" ...
    assert "50\u202f%" in resp.get_data(as_text=True)                 # ... and a narrow no-break space before %
    assert "Patients de l'étude IMATINIB-SSC" in page
    assert "Imatinib contre placebo dans la sclérodermie systémique" in page      # the study file's French title
    pid = ids["A"]
    patient = staff.get(f"/staff/patients/{pid}").get_data(as_text=True)
    assert re.search(r"\d\d/\d\d/20\d\d \d\d:\d\d (CET|CEST)", patient)        # dd/mm/yyyy, the zone named
    english = Staff(dash_app, "admin")
    english.post("/language", data={"lang": "en", "next": "/staff/"})
    page = english.get(f"/staff/patients/{pid}").get_data(as_text=True)
    assert re.search(r"\b\d{1,2} [A-Z][a-z]{2} 20\d\d\b", page) and not re.search(r"\b\d{1,2}/\d{1,2}/\d\d\b", page)
