"""Alert rules and site contacts in the study files: checked at start-up, one line naming the file and the rule
or site; the rules' evaluation; the mail settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proapp.alerts.rules import ITSELF, Earlier, evaluate
from proapp.config import ConfigError
from proapp.instruments import default_registry
from proapp.mail import SmtpSettings, SmtpUrlError
from proapp.ops import app_config
from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, StudyFileError, load_contacts, load_studies, load_study_file
from proapp.studies.schema import AlertRule
from tests.studies.test_study_files import shipped, write

CONTACTS = load_contacts(DEMO_CONTACTS)


def rule(**when) -> dict:
    return {"code": "TEST_RULE", "label": {"en": "Test", "fr": "Test"}, "severity": "review", "when": when}


@pytest.mark.parametrize("when, message", [
    ({"item": "DU_DIARY.DU_FEVER", "equals": "Y"}, "alerts.rules (TEST_RULE): DU_DIARY 2.3 has no item DU_FEVER"),
    ({"item": "DU_DIARY.DU_INFECT", "equals": "X"}, "(TEST_RULE): 'X' is not a value of DU_DIARY.DU_INFECT"),
    ({"item": "PAIN_VAS.PAIN_VAS", "at_least": 150}, "150 is outside the possible range of PAIN_VAS.PAIN_VAS (0 to 100)"
     ),
    ({"score": "PAIN_VAS.PAIN", "change_from": "baseline", "at_least": 130}, "outside the possible range"),
    ({"score": "DU_DIARY.NEW_ULCERS", "at_least": 2}, "DU_DIARY 2.3 has no derived score NEW_ULCERS"),
    ({"item": "DU_DIARY.DU_INFECT", "at_least": 1}, "DU_DIARY.DU_INFECT is not a number"),
    ({"item": "DU_DIARY.DU_HAND", "equals": "L"}, "asked once per repeat"),
    ({"item": "SF36.Q1", "equals": "1"}, "SF36 is not listed under instruments"),
    ({"score": "PAIN_VAS.PAIN", "change_from": "baseline", "equals": "3"}, "change_from compares numbers"),
    ({"item": "DU_DIARY.DU_INFECT"}, "give a comparison"),
])
def test_an_impossible_rule_stops_the_start_naming_the_file_and_the_rule(tmp_path, when, message):
    data = shipped("ADUSE.yaml")
    data["alerts"]["rules"].append(rule(**when))
    with pytest.raises(StudyFileError) as exc:
        load_study_file(write(tmp_path, data, "ADUSE.yaml"), default_registry(), CONTACTS)
    assert str(exc.value).startswith("study file ADUSE.yaml: ")
    assert message in str(exc.value)


def test_a_site_without_a_phone_refuses_to_load_and_check_says_so(tmp_path):
    with pytest.raises(StudyFileError) as exc:
        load_studies(DATA_DIR, default_registry())             # production: no fictional contacts
    assert "study ADUSE, site TLS: no phone number" in str(exc.value)
    assert str(exc.value).count("\n") == 0
    env = {"PATH": "/usr/bin:/bin", "PROAPP_ENV": "production", "PROAPP_INSTANCE_PATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "proapp", "check"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert any("site TLS: no phone number" in line for line in out.stdout.splitlines()), out.stdout


def test_a_contacts_file_naming_an_unknown_site_is_refused(tmp_path):
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text('ADUSE:\n  TLS: {phone: "+33199000101"}\n  XYZ: {phone: "+33199000102"}\n')
    with pytest.raises(StudyFileError, match=r"site contacts file contacts.yaml: ADUSE.XYZ: no such site"):
        load_studies(DATA_DIR, default_registry(), contacts)
    contacts.write_text('ADUSE:\n  TLS: {phone: "01 99 00 01 01"}\n')
    with pytest.raises(StudyFileError, match=r"sites.0.phone"):
        load_studies(DATA_DIR, default_registry(), contacts)


def test_any_all_and_previous_comparisons():
    r = AlertRule.model_validate(rule(all=[{"score": "PAIN_VAS.PAIN", "at_least": 50},
                                           {"any": [{"item": "DU_DIARY.DU_INFECT", "equals": "Y"},
                                                    {"score": "PAIN_VAS.PAIN", "change_from": "previous",
                                                     "at_least": 20}]}]))
    earlier = {("PAIN_VAS", "previous"): Earlier("W3", {"score:PAIN": 40})}

    def history(inst, which):
        return earlier.get((inst, which))

    current = {"PAIN_VAS": {"score:PAIN": 65}, "DU_DIARY": {"item:DU_INFECT": "N"}}
    [hit] = evaluate([r], current, history)
    assert [e["ref"] for e in hit.evidence] == ["PAIN_VAS.PAIN", "PAIN_VAS.PAIN"]
    assert hit.evidence[1]["change"] == 25 and hit.evidence[1]["reference_visit"] == "W3"
    assert evaluate([r], {**current, "PAIN_VAS": {"score:PAIN": 55}}, history) == []       # up 15 only
    assert evaluate([r], {"PAIN_VAS": {"score:PAIN": 65}}, history) == []    # DU_DIARY not in this occurrence
    assert evaluate([r], current, lambda *_: None) == []                      # no earlier response


@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.chu.test", ("mail.chu.test", 25, False, False, None, None)),
    ("smtp://alerts:s%40cret@mail.chu.test:587?starttls=true", ("mail.chu.test", 587, False, True, "alerts", "s@cret")),
    ("smtps://mail.chu.test", ("mail.chu.test", 465, True, False, None, None)),
])
def test_smtp_urls(url, expected):
    s = SmtpSettings.parse(url)
    assert (s.host, s.port, s.implicit_tls, s.starttls, s.user, s.password) == expected


@pytest.mark.parametrize("url", ["http://mail", "smtp://", "smtps://h?starttls=true", "smtp://h?tls=1", "smtp://h:x"])
def test_bad_smtp_urls(url):
    with pytest.raises(SmtpUrlError):
        SmtpSettings.parse(url)


def test_production_refuses_the_console_mail_gateway(tmp_path):
    from tests.test_config import GOOD_PROD

    with pytest.raises(ConfigError, match="PROAPP_MAIL_GATEWAY=console sends no e-mail"):
        app_config(tmp_path, env={**GOOD_PROD, "PROAPP_MAIL_GATEWAY": "console"})
    with pytest.raises(ConfigError, match="PROAPP_SMTP_URL"):
        app_config(tmp_path, env={**GOOD_PROD, "PROAPP_SMTP_URL": "mail.chu-example.fr"})
    assert app_config(tmp_path, env=GOOD_PROD)["MAIL_GATEWAY"] == "smtp"


def test_starttls_and_authentication(tmp_path, monkeypatch):
    from proapp.mail import Mail, SmtpMailer
    from tests.mailserver import smtp_server
    from tests.test_deployed import self_signed

    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))           # the client checks the server's certificate
    with smtp_server(auth=("alerts", "s3cret"), tls=(str(cert), str(key))) as inbox:
        plain = SmtpMailer(SmtpSettings.parse(f"smtp://alerts:s3cret@{inbox.host}:{inbox.port}"), "p <p@chu.test>")
        assert plain.send(Mail("tls@chu.test", "x", "y", "<m0@proapp>")).kind != "sent"     # no TLS: refused
        base = f"{inbox.host}:{inbox.port}?starttls=true"
        good = SmtpMailer(SmtpSettings.parse(f"smtp://alerts:s3cret@{base}"), "p <p@chu.test>")
        assert good.send(Mail("tls@chu.test", "Sujet é", "Corps", "<m1@proapp>")).kind == "sent"
        bad = SmtpMailer(SmtpSettings.parse(f"smtp://alerts:wrong@{base}"), "p <p@chu.test>")
        outcome = bad.send(Mail("tls@chu.test", "x", "y", "<m2@proapp>"))
        assert outcome.kind == "failed" and "authentication" in outcome.error
        [message] = inbox.all()
        assert message["Subject"] == "Sujet é" and message["Auto-Submitted"] == "auto-generated"
    closed = SmtpMailer(SmtpSettings.parse(f"smtp://127.0.0.1:{inbox.port}"), "p <p@chu.test>", timeout=2)
    assert closed.send(Mail("tls@chu.test", "x", "y", "<m3@proapp>")).kind == "retry"     # nothing listens


def test_dev_mail_lists_the_console_mails(app):
    from proapp.mail import ConsoleMailer, Mail

    ConsoleMailer(__import__("pathlib").Path(app.instance_path) / "console_mail.jsonl", "p <p@x.test>").send(
        Mail("tls@chu.test", "Alerte de test", "Corps", "<m@proapp>"))
    page = app.test_client().get("/dev/mail")
    assert page.status_code == 200 and "Alerte de test" in page.text


def test_one_answer_raises_only_its_most_severe_rule():
    grade4 = AlertRule.model_validate({**rule(item="TOLERANCE.TOL_NAUSEA", equals="4"), "code": "VERY",
                                       "severity": "same_day", "patient": {"en": "x", "fr": "x"}})
    grade34 = AlertRule.model_validate({**rule(item="TOLERANCE.TOL_NAUSEA", one_of=["3", "4"]), "code": "SEVERE"})
    other = AlertRule.model_validate({**rule(item="TOLERANCE.TOL_VOMIT", one_of=["3", "4"]), "code": "VOMIT"})
    both = AlertRule.model_validate({**rule(any=[{"item": "TOLERANCE.TOL_NAUSEA", "in": ["3", "4"]},
                                                 {"item": "TOLERANCE.TOL_VOMIT", "in": ["3", "4"]}]), "code": "ANY"})
    rules = [grade34, grade4, other, both]
    hits = evaluate(rules, {"TOLERANCE": {"item:TOL_NAUSEA": "4", "item:TOL_VOMIT": "0"}}, lambda *_: None)
    assert [h.rule.code for h in hits] == ["VERY"]                    # not also SEVERE and ANY, for the same answer
    hits = evaluate(rules, {"TOLERANCE": {"item:TOL_NAUSEA": "4", "item:TOL_VOMIT": "3"}}, lambda *_: None)
    assert [h.rule.code for h in hits] == ["VERY", "VOMIT", "ANY"]    # two answers: ANY names both, kept
    hits = evaluate(rules, {"TOLERANCE": {"item:TOL_NAUSEA": "3"}}, lambda *_: None)
    assert [h.rule.code for h in hits] == ["SEVERE", "ANY"]           # same severity: both kept


def test_a_graded_answer_compares_with_the_baseline_and_urgent_rules_need_the_patients_wording(tmp_path):
    r = AlertRule.model_validate(rule(all=[{"item": "TOLERANCE.TOL_FATIGUE", "in": ["3", "4"]},
                                           {"item": "TOLERANCE.TOL_FATIGUE", "change_from": "baseline",
                                            "at_least": 1}]))
    m0 = {("TOLERANCE", "baseline"): Earlier("M0", {"item:TOL_FATIGUE": "3"})}
    assert evaluate([r], {"TOLERANCE": {"item:TOL_FATIGUE": "3"}}, lambda i, w: m0.get((i, w))) == []
    assert evaluate([r], {"TOLERANCE": {"item:TOL_FATIGUE": "4"}}, lambda i, w: m0.get((i, w)))
    assert evaluate([r], {"TOLERANCE": {"item:TOL_FATIGUE": "4"}}, lambda *_: None) == []     # M0 itself
    data = shipped("IMATINIB-SSC.yaml")
    data["alerts"]["rules"].append(rule(item="TOLERANCE.TOL_FATIGUE", change_from="baseline", at_least=5))
    with pytest.raises(StudyFileError, match=r"5 is outside the possible range of TOLERANCE.TOL_FATIGUE \(-4 to 4\)"):
        load_study_file(write(tmp_path, data, "IMATINIB-SSC.yaml"), default_registry(), CONTACTS)
    with pytest.raises(ValueError, match="give its patient wording"):
        AlertRule.model_validate({**rule(item="TOLERANCE.TOL_FATIGUE", equals="4"), "severity": "urgent"})


def test_without_a_reference_a_change_is_met_only_where_the_study_file_says_so():
    def graded(without: str) -> AlertRule:
        return AlertRule.model_validate(rule(all=[
            {"item": "TOLERANCE.TOL_NAUSEA", "in": ["3", "4"]},
            {"item": "TOLERANCE.TOL_NAUSEA", "change_from": "baseline", "at_least": 1, "without_reference": without}]))

    severe = {"TOLERANCE": {"item:TOL_NAUSEA": "3"}}
    assert evaluate([graded("not_met")], severe, lambda *_: None) == []            # the default: nothing
    [hit] = evaluate([graded("met")], severe, lambda *_: None)                     # M0 missed: the grade alone
    assert hit.evidence[-1] == {"ref": "TOLERANCE.TOL_NAUSEA", "kind": "item", "value": "3",
                                "compared_with": "baseline", "reference_visit": None}
    assert evaluate([graded("met")], severe, lambda *_: ITSELF) == []              # M0 itself: never compared
    with pytest.raises(ValueError, match="without_reference applies to a change"):
        AlertRule.model_validate(rule(item="TOLERANCE.TOL_NAUSEA", at_least=3, without_reference="met"))


def test_one_visit_before_treatment_at_most(tmp_path):
    data = shipped("IMATINIB-SSC.yaml")
    assert [v["code"] for v in data["visits"] if v.get("before_treatment")] == ["M0"]
    data["visits"][1]["before_treatment"] = True
    with pytest.raises(StudyFileError, match=r"one visit before treatment at most \(M0, M1\)"):
        load_study_file(write(tmp_path, data, "IMATINIB-SSC.yaml"), default_registry(), CONTACTS)


def test_every_shipped_rule_has_a_first_person_patient_wording_and_urgent_rules_exist():
    for study in load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS).all():
        rules = study.definition.alerts.rules
        assert any(r.severity == "urgent" for r in rules), study.definition.code
        for r in rules:
            assert r.patient is not None, r.code
            assert r.patient.en.startswith(("You told us", "Your ")), r.code
            assert r.patient.fr.startswith(("Vous nous avez", "La douleur")), r.code
            assert r.patient.en != r.label.en and "(4)" not in r.patient.en


def test_the_questions_tell_a_scab_a_planned_stay_and_a_treated_infection_apart():
    diary = default_registry().get("DU_DIARY", "2.1")
    assert "A dry black scab on an ulcer that is not spreading does not count" in diary.item("DU_NECROSIS").text.en
    assert "NOT planned" in diary.item("DU_HOSPITAL").text.en and "iloprost" in diary.item("DU_HOSPITAL").text.en
    assert "NOT planned" in diary.item("DU_SURGERY").text.en
    assert "NEW signs" in diary.item("DU_INFECT").text.en and "answer No" in diary.item("DU_INFECT").text.en
    assert "croûte noire et sèche" in diary.item("DU_NECROSIS").text.fr
