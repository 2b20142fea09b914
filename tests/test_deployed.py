"""proapp as deployed, end to end: Debian's nginx terminating TLS with the shipped site file, gunicorn with the
shipped configuration in production mode, PostgreSQL, one ``proapp worker`` sending through the real ``twilio``
SDK to the fake Twilio, Chromium on a 320 px phone. Every port is chosen free at run time; everything runs on
127.0.0.1. The patient answers in French, switches language, stops the SMS and submits; a nurse signs in,
pauses another patient's SMS and signs out; the EDC's job pulls the responses over TLS; Twilio reports the
delivery. Then the database holds every answer and change, and no log holds a link token, a phone number, a
password or an API key."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import func, select, update
from werkzeug.security import generate_password_hash

from proapp import db
from proapp.models import Occurrence, OccurrenceStatus, Patient, PatientContact, SmsMessage, SmsStatus
from proapp.studies.catalog import DEMO_CONTACTS
from tests.benchmarks._setup import free_port
from tests.conftest import PHONE_KEY, PRODUCTION_STUDIES, fresh_app
from tests.mailserver import Inbox, smtp_server
from tests.remote.voice_helpers import answer_the_questions
from tests.sms.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, CallDriver, FakeTwilio

pytestmark = [pytest.mark.requirement("DEPLOYED"), pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PHONE_A, PHONE_B, PHONE_C = "+33612345678", "+33698765432", "+33687654321"
PASSWORD = "a long staff password 42"
AUDIT_KEYS = "e2e:" + "5e" * 32
TIMEZONES = ("Europe/Paris", "Pacific/Tahiti", "America/Guadeloupe", "Indian/Reunion", "Pacific/Noumea")


def phone_forms(number: str) -> list[str]:
    national = "0" + number[3:]
    return [number, number[1:], national, number[3:], " ".join(re.findall("..", national)),
            ".".join(re.findall("..", national))]


def daytime_zone() -> str:
    """A patient time zone where it is now well inside 10:00-19:00: past the default SMS hour (10:00), so an
    invitation goes out at once, and far from quiet hours; of those, the one nearest the middle of the day."""
    now = dt.datetime.now(dt.UTC)
    local = {name: now.astimezone(ZoneInfo(name)) for name in TIMEZONES}
    hours = {name: t.hour + t.minute / 60 for name, t in local.items()}
    inside = [name for name, h in hours.items() if 10 <= h < 19]
    assert inside, "no shipped time zone is in daytime now"     # their windows cover the 24 hours of UTC
    return max(inside, key=lambda name: min(hours[name] - 10, 19 - hours[name]))


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def nginx_conf(folder: Path, *, tls_port: int, http_port: int, upstream: int | list[int], cert: Path,
               key: Path) -> Path:
    """The shipped site file with this run's ports, certificate and logs (and one upstream server line per gunicorn
    instance), inside a minimal main file."""
    site = (ROOT / "proapp/deploy/nginx-site.conf.example").read_text()
    servers = "\n    ".join(f"server 127.0.0.1:{port};" for port in ([upstream] if isinstance(upstream, int)
                                                                    else upstream))
    for old, new in (("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("https://pro.example-hospital.fr$request_uri", f"https://127.0.0.1:{tls_port}$request_uri"),
                     ("pro.example-hospital.fr", "127.0.0.1"),
                     ("/etc/letsencrypt/live/127.0.0.1/fullchain.pem", str(cert)),
                     ("/etc/letsencrypt/live/127.0.0.1/privkey.pem", str(key)),
                     ("/var/log/nginx/", f"{folder}/"),
                     ("server 127.0.0.1:8000;", servers)):
        assert old in site, old
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    temp = {name: folder / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    main = folder / "nginx.conf"
    main.write_text(f"""
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-main.error.log warn;
{"user root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {folder}/nginx-default.access.log;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {folder}/site.conf;
}}
""")
    return main


def wait_for(check, what: str, seconds: float = 30.0, procs: tuple[subprocess.Popen, ...] = ()) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode} while waiting for {what}"
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Deployment:
    url: str
    http_url: str
    cert: Path
    logs: Path
    env: dict[str, str]
    twilio: FakeTwilio
    app: object
    inbox: Inbox
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    def cli(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run([str(ROOT / ".venv/bin/proapp"), *args], env=self.env, cwd=ROOT, input=stdin,
                              capture_output=True, text=True, timeout=60)
        with (self.logs / "cli.log").open("a") as log:      # what the commands logged (their output is the answer)
            log.write(done.stderr)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as out:          # the child keeps its own copy
            proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for name, sig in (("worker", signal.SIGTERM), ("gunicorn", signal.SIGTERM), ("nginx", signal.SIGQUIT)):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def all_logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log"))}

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, verify=str(self.cert), timeout=30, **kw)


@pytest.fixture(scope="module")
def deployed(database_url, instance_dir, tmp_path_factory) -> Iterator[Deployment]:
    if not os.path.exists(NGINX):
        pytest.fail(f"{NGINX} is missing: the test command installs Debian's nginx package")
    folder = tmp_path_factory.mktemp("deployed")
    logs = folder / "logs"
    logs.mkdir()
    cert, key = self_signed(folder)
    tls_port, http_port, upstream = free_port(), free_port(), free_port()
    public = f"https://127.0.0.1:{tls_port}"
    app = fresh_app(database_url)                  # an emptied database with the studies loaded
    app.extensions["proapp.engine"].dispose()
    with FakeTwilio() as twilio, smtp_server() as inbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROAPP_")}
        env.update({
            "PROAPP_ENV": "production", "PROAPP_SECRET_KEY": "s" * 64, "PROAPP_DATABASE_URL": database_url,
            "PROAPP_PUBLIC_URL": public, "PROAPP_PROXY_HOPS": "1", "PROAPP_PHONE_KEYS": PHONE_KEY,
            "PROAPP_AUDIT_KEYS": AUDIT_KEYS,
            "PROAPP_SMS_GATEWAY": "twilio", "PROAPP_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "PROAPP_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PROAPP_TWILIO_API_BASE": twilio.base_url,
            "PROAPP_INSTANCE_PATH": str(folder / "instance"), "PROAPP_BIND": f"127.0.0.1:{upstream}",
            "PROAPP_WEB_WORKERS": "2", "PROAPP_RATE_LOGIN_PER_IP": "0",
            "PROAPP_MAIL_GATEWAY": "smtp", "PROAPP_SMTP_URL": inbox.url,
            "PROAPP_MAIL_FROM": "proapp <no-reply@chu.test>", "PROAPP_SITE_CONTACTS": str(DEMO_CONTACTS),
            "PROAPP_STUDIES_DIR": str(PRODUCTION_STUDIES),
        })
        d = Deployment(public, f"http://127.0.0.1:{http_port}", cert, logs, env, twilio, app, inbox,
                       secrets=[PASSWORD, "s" * 64, PHONE_KEY, AUTH_TOKEN, "5e" * 32])
        try:
            d.cli("init")
            d.cli("user", "create", "--email", "nurse@chu.test", "--role", "coordinator", "--study", "ADUSE",
                  "--language", "en", stdin=PASSWORD + "\n")
            zone = daytime_zone()
            anchor = (dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=7)).isoformat()
            for subject, phone in (("ADU-TLS-101", PHONE_A), ("ADU-TLS-102", PHONE_B)):
                d.cli("enroll", "--study", "ADUSE", "--site", "TLS", "--subject", subject, "--phone", phone,
                      "--language", "fr", "--anchor-date", anchor, "--timezone", zone, "--agreed-on", anchor)
            api_key = d.cli("api-key", "create", "--study", "ADUSE", "--name", "EDC nightly").split()[-1]
            assert api_key.startswith("pk_") and "." in api_key
            d.secrets.append(api_key)
            d.api_key = api_key
            gunicorn = d.start("gunicorn", GUNICORN)
            nginx = d.start("nginx", [NGINX, "-c", str(nginx_conf(logs, tls_port=tls_port, http_port=http_port,
                                                                  upstream=upstream, cert=cert, key=key))])
            wait_for(lambda: d.get("/healthz").status_code == 200, "gunicorn behind nginx", procs=(gunicorn, nginx))
            worker = d.start("worker", [str(ROOT / ".venv/bin/proapp"), "worker"])
            wait_for(lambda: len(twilio.messages) >= 2, "the two invitations at the fake Twilio", procs=(worker,))
            yield d
        finally:
            d.stop()


def sms_link(d: Deployment, to: str) -> str:
    [msg] = [m for m in d.twilio.messages.values() if m.to == to]
    link = re.search(r"https://\S+/s/[A-Za-z0-9_-]+", msg.body).group(0)
    assert link.startswith(d.url + "/s/")
    return link


def go(page, locator) -> None:
    with page.expect_navigation(wait_until="load"):
        locator.click()


def test_a_two_factor_account_resetting_its_password_over_https_passes_the_code_step(deployed):
    """Issue 28, finding 1, as deployed: whoever reads the mailbox of a two-factor account and follows the reset
    link sets a password but is not signed in; the code (the phone) is still asked, and the sign-in is audited.
    (Before the end-to-end test, which stops the stack.)"""
    import pyotp

    d = deployed
    email, first, second = "coord-2fa@chu.test", "a first long staff password 7", "a second long staff password 8"
    d.secrets += [first, second]
    d.cli("user", "create", "--email", email, "--role", "coordinator", "--study", "ADUSE", "--language", "en",
          stdin=first + "\n")

    class Browser(requests.Session):
        """Cookies kept; the certificate given on every request (an environment CA bundle overrides
        ``Session.verify``)."""

        def request(self, *args, **kw):
            return super().request(*args, **{"verify": str(d.cert), "timeout": 30, **kw})

    def send(session: requests.Session, path: str, **data: str) -> requests.Response:
        page = session.get(d.url + path)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return session.post(d.url + path, data={"csrf_token": token, **data}, allow_redirects=False)

    owner = Browser()                   # the coordinator sets up two-factor sign-in (required here)
    assert send(owner, "/staff/login", email=email, password=first).status_code == 303
    page = owner.get(d.url + "/staff/account/two-factor")
    secret = re.search(r'id="totp-key">([A-Z2-7 ]{39})<', page.text).group(1).replace(" ", "")   # in fours
    d.secrets.append(secret)
    totp = pyotp.TOTP(secret)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    on = owner.post(d.url + "/staff/account/two-factor?keep=1", data={"csrf_token": token, "code": totp.now()})
    assert on.status_code == 200 and "<code>" in on.text

    thief = Browser()                   # reads the mailbox, not the phone
    assert send(thief, "/staff/forgot", email=email).status_code == 200
    wait_for(lambda: d.inbox.to(email), "the reset mail at the SMTP server", procs=(d.procs["worker"],))
    link = re.search(r"https://\S+/staff/reset/[A-Za-z0-9_-]+", d.inbox.to(email)[-1].get_content()).group(0)
    d.secrets.append(link.rsplit("/", 1)[1])
    done = send(thief, link.removeprefix(d.url), password=second, password2=second)
    assert done.status_code == 303 and done.headers["Location"].endswith("/staff/login/code"), done.headers
    assert thief.get(d.url + "/staff/", allow_redirects=False).status_code == 303      # not in
    assert send(thief, "/staff/login/code", code="000000").status_code == 422
    later_code = totp.at(int(time.time()) + 30)       # the next step's code: the set-up used this one's
    assert send(thief, "/staff/login/code", code=later_code).status_code == 303    # with the phone: in
    assert thief.get(d.url + "/staff/", allow_redirects=False).status_code == 200

    from proapp.audit.models import AuditEvent

    with d.app.app_context():
        mine = [(e.action, e.new) for e in db.session().scalars(
            select(AuditEvent).where(AuditEvent.actor == f"user:{email}").order_by(AuditEvent.id))]
    d.app.extensions["proapp.engine"].dispose()
    after_reset = [a for a, _new in mine[[a for a, _ in mine].index("user.password_reset"):]]
    assert "user.login_failed" in after_reset and "user.login" in after_reset
    assert mine[-1][0] == "user.login" and mine[-1][1]["second_factor"] == "totp"


GUNICORN = [str(ROOT / ".venv/bin/gunicorn"), "-c", "proapp/deploy/gunicorn.conf.py", "wsgi:app"]
APP_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
               "Cross-Origin-Opener-Policy", "Permissions-Policy", "Strict-Transport-Security")


def assert_nginx_page_is_safe(resp: requests.Response, status: int) -> None:
    """nginx's own error page: the security headers, and no version anywhere."""
    assert resp.status_code == status, (resp.status_code, resp.text[:200])
    for name in APP_HEADERS:
        assert resp.headers.get(name), (status, name)
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert resp.headers["Server"] == "nginx" and not re.search(r"nginx/\d", resp.text)


def test_nginx_keeps_tokens_out_of_its_logs_and_its_error_pages_safe(deployed):
    """Issue 28, findings 4 and 13. With gunicorn down, nginx's error log would hold the request line and the
    upstream URL of /s/<token>, /staff/reset/<token> and /staff/welcome/<token>, and a body buffered to a
    temporary file would log them too; its own 413, 405 and 502 pages lacked the security headers and named its
    version."""
    import secrets

    d = deployed
    token = sms_link(d, PHONE_B).rsplit("/", 1)[1]
    reset, welcome = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    d.secrets += [token, reset, welcome]
    big = {"password": "x" * 40_000}                        # over nginx's body buffer: a temporary file
    post = lambda path, **kw: requests.post(d.url + path, verify=str(d.cert), timeout=30, **kw)  # noqa: E731
    post(f"/staff/reset/{reset}", data=big)
    assert_nginx_page_is_safe(post("/staff/login", data=b"x" * (2 << 20)), 413)
    assert_nginx_page_is_safe(requests.request("TRACE", d.url + "/staff/login", verify=str(d.cert), timeout=30),
                              405)
    own = d.get("/staff/login")                              # proapp's own headers, not doubled by nginx's
    assert own.status_code == 200 and "script-src 'self'" in own.headers["Content-Security-Policy"]
    assert "default-src 'none'" not in own.headers["Content-Security-Policy"]
    assert own.headers["X-Frame-Options"] == "DENY" and own.headers["Server"] == "nginx"

    gunicorn = d.procs["gunicorn"]
    gunicorn.send_signal(signal.SIGTERM)
    gunicorn.wait(timeout=30)
    shutil.copy(d.logs / "gunicorn.log", d.logs / "gunicorn-before-restart.log")
    try:
        assert_nginx_page_is_safe(d.get(f"/s/{token}"), 502)
        assert d.get(f"/staff/reset/{reset}").status_code == 502
        assert post(f"/staff/welcome/{welcome}", data=big).status_code == 502
        assert d.get("/staff/login").status_code == 502      # a path without a token is still logged
    finally:
        d.start("gunicorn", GUNICORN)
        wait_for(lambda: d.get("/healthz").status_code == 200, "gunicorn again", procs=(d.procs["gunicorn"],))
    logs = d.all_logs()
    assert "connect() failed" in logs["proapp.error.log"] and "/staff/login" in logs["proapp.error.log"]
    assert "/s/[redacted]" in logs["proapp.access.log"] and "/staff/reset/[redacted]" in logs["proapp.access.log"]
    for name, text in logs.items():
        for secret in (token, reset, welcome):
            assert secret not in text, f"{name} holds {secret[:6]}..."


def test_an_urgent_signal_reaches_the_on_call_mobile_as_soon_as_it_is_saved(deployed):
    """Another study's patient (IMATINIB-SSC, before the first dose) reports very severe shortness of breath and
    closes the page without sending: the on-call mobile gets the SMS and the on-call address the e-mail, once."""
    d = deployed
    zone = daytime_zone()
    today = dt.datetime.now(ZoneInfo(zone)).date().isoformat()
    d.cli("enroll", "--study", "IMATINIB-SSC", "--site", "TLS", "--subject", "IMA-TLS-901", "--phone", PHONE_C,
          "--language", "fr", "--anchor-date", today, "--timezone", zone, "--agreed-on", today)
    d.cli("tick")                                           # the invitation now, not at the worker's next queueing
    wait_for(lambda: any(m.to == PHONE_C for m in d.twilio.messages.values()), "the invitation to the patient")
    link = sms_link(d, PHONE_C)
    d.secrets.append(link.rsplit("/", 1)[1])
    patient = requests.Session()              # verify= on each request: a session's own is overridden by the env
    tls = {"verify": str(d.cert), "timeout": 30}
    assert patient.get(link, **tls).url == d.url + "/q"
    screen = patient.get(d.url + "/q/TOLERANCE.BREATH", **tls)
    token = re.search(r'name="csrf_token" value="([^"]+)"', screen.text).group(1)
    saved = patient.post(d.url + "/q/TOLERANCE.BREATH", allow_redirects=False, **tls,
                         data={"csrf_token": token, "TOL_DYSPNOEA": "4", "TOL_DYSPNOEA_INT": "3"})
    assert saved.status_code == 303 and "/q/call" in saved.headers["Location"]
    call = patient.get(d.url + saved.headers["Location"].removeprefix(d.url), **tls).text
    assert "Appelez votre équipe d'étude maintenant" in call and 'href="tel:+33199000210"' in call
    assert "Vous nous avez indiqué que votre essoufflement est très sévère." in call
    assert "114" in call and "116 117" in call and "(4)" not in call
    on_call_mobile, on_call_email = "+33639980210", "astreinte-tls@imatinib-ssc.example"
    wait_for(lambda: any(m.to == on_call_mobile for m in d.twilio.messages.values()) and d.inbox.to(on_call_email),
             "the urgent SMS at the fake Twilio and the e-mail at the SMTP server")
    [sms] = [m for m in d.twilio.messages.values() if m.to == on_call_mobile]
    assert "URGENTE IMATINIB-SSC/TLS" in sms.body and "IMA-TLS-901" in sms.body and d.url + "/staff/alerts/" in sms.body
    assert "essoufflement" not in sms.body.lower()              # the SMS names no symptom; the alert's page does
    [mail] = d.inbox.to(on_call_email)
    for message in (sms.body, mail.get_content()):
        for leak in ("TOL_DYSPNOEA", "GÊNÉ", *d.secrets, *phone_forms(PHONE_C)):   # no answer, link or number
            assert leak not in message, leak
    time.sleep(6)                                           # another worker cycle: nothing goes twice
    assert len([m for m in d.twilio.messages.values() if m.to == on_call_mobile]) == 1
    assert len(d.inbox.to(on_call_email)) == 1
    from proapp.alerts.models import Alert

    with d.app.app_context():
        [alert] = db.session().scalars(select(Alert).where(Alert.rule_code == "TOL_BREATHLESS_VERY_SEVERE")).all()
        assert (alert.severity, alert.source) == ("urgent", "answer_saved")
    d.app.extensions["proapp.engine"].dispose()


@pytest.mark.requirement("INFORMED")
def test_the_information_page_and_the_agreement_as_deployed(deployed, browser):
    """Runs before the end-to-end test (which stops the stack): the information page over HTTPS behind nginx, from
    a patient's page, and the agreement `proapp enroll --agreed-on` recorded with the study file's sheet version."""
    d = deployed
    public = d.get("/information/ADUSE", headers={"Accept-Language": "fr"})
    assert public.status_code == 200 and public.headers["Strict-Transport-Security"]
    for phrase in ("Notice d'information version 2.1", "MR-001", "Twilio Inc.", "dpo@chu-exemple.example",
                   "hors de l'Union européenne"):
        assert phrase in public.text.replace("&#39;", "'"), phrase
    phone = browser.new_context(viewport={"width": 320, "height": 568}, locale="fr-FR", ignore_https_errors=True)
    page = phone.new_page()
    page.goto(sms_link(d, PHONE_B))
    go(page, page.get_by_role("link", name="Vos données et vos droits"))
    assert page.url == d.url + "/q/information"
    assert "Notice d'information version 2.1" in page.inner_text("main")
    assert page.get_by_role("button", name="J'ai lu cette information").count() == 0    # agreed to this version
    phone.close()
    from proapp.audit.models import AuditEvent
    from proapp.patients.models import Agreement, Patient

    with d.app.app_context():
        s = db.session()
        aduse = select(Patient.id).where(Patient.subject_id.like("ADU-%"))   # (another test enrols in IMATINIB-SSC)
        rows = s.execute(select(Agreement.kind, Agreement.information_version, Agreement.recorded_by)
                         .where(Agreement.patient_id.in_(aduse))).all()
        assert sorted(rows) == [("agreement", "2.1", "cli")] * 2
        agreed = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient.agreed",
                                                    AuditEvent.patient_id.in_(aduse))).all()
        assert [(e.actor, e.new["information_version"]) for e in agreed] == [("cli", "2.1")] * 2
    d.app.extensions["proapp.engine"].dispose()


def test_a_weekly_diary_answered_by_sms_replies_as_deployed(deployed):
    """A patient who answers by SMS replies: the worker (its own process) sends each question through the fake
    Twilio, the phone's replies come to /sms/inbound through nginx, signed for the public URL."""
    from proapp.patients.models import Occurrence, Patient
    from proapp.questionnaire.models import Answer, Response
    from tests.sms.fake_twilio import Phone

    d = deployed
    number = "+33676543210"
    zone = daytime_zone()
    anchor = (dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=7)).isoformat()
    d.cli("enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-131", "--phone", number,
          "--language", "fr", "--anchor-date", anchor, "--timezone", zone, "--agreed-on", anchor)
    with d.app.app_context(), db.transaction() as s:
        s.scalar(select(Patient).where(Patient.subject_id == "ADU-TLS-131")).answer_channel = "sms"
    d.cli("tick")
    phone = Phone(d.twilio, number, url=d.url + "/sms/inbound")
    wait_for(lambda: phone.received(), "the invitation")
    d.secrets.append(re.search(r"/s/([A-Za-z0-9_-]+)", phone.last()).group(1))

    def say(body: str) -> list[str]:
        before = len(phone.received())
        url, params, signature = phone.reply(body)
        resp = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, verify=str(d.cert),
                             timeout=30)
        assert resp.status_code == 200 and "<Response>" in resp.text and "<Message" not in resp.text
        wait_for(lambda: len(phone.received()) > before, f"the SMS after {body!r}")
        return phone.received()[before:]

    _url, params, signature = phone.reply("1")
    forged = requests.post(d.url + "/sms/inbound", data={**params, "Body": "STOP"}, verify=str(d.cert), timeout=30,
                           headers={"X-Twilio-Signature": signature})
    assert forged.status_code == 403
    got, replies = say("1"), 1
    started = time.monotonic()
    while not got[-1].startswith("SuiviPRO : merci"):
        assert replies < 30, got
        got = say("7" if "0 à 10" in got[-1] else "non")
        replies += 1
    print(f"\ndeployed: weekly diary by SMS replies, {replies} replies, {time.monotonic() - started:.0f} s")
    with d.app.app_context():
        s = db.session()
        occ = s.scalar(select(Occurrence).join(Patient).where(Patient.subject_id == "ADU-TLS-131",
                                                              Occurrence.visit_code == "W1"))
        assert occ.status.value == "completed"
        modes = s.scalars(select(Answer.mode).join(Response).where(Response.occurrence_id == occ.id)).all()
        assert set(modes) == {"sms"} and len(modes) == replies - 1
    d.app.extensions["proapp.engine"].dispose()
    logs = "\n".join(d.all_logs().values())
    for leak in (*d.secrets, *phone_forms(number)):
        assert leak not in logs, leak


# A voice call ---------------------------------------------------------------------------------------------------

PHONE_V = "+33611223344"
PIN = "739164"


class _Https:
    """What the call driver needs of a client: post a form and read the answer, here over TLS through nginx."""

    def __init__(self, base: str, cert: str):
        self.base, self.cert = base, cert

    def post(self, path: str, data: dict, headers: dict) -> _Answer:
        return _Answer(requests.post(self.base + path, data=data, headers=headers, verify=self.cert, timeout=30))


class _Answer:
    def __init__(self, resp: requests.Response):
        self.status_code, self.text = resp.status_code, resp.text

    def get_data(self, as_text: bool = True) -> str:
        return self.text


def test_a_weekly_diary_answered_by_a_call_through_the_deployed_stack(deployed):
    """One call through the deployed stack: the worker places it through the real ``twilio`` SDK to the fake
    Twilio, whose driver plays the phone by posting the signed webhooks over HTTPS through nginx. The diary is
    stored with its modes, the row delivered, and no log holds the PIN or the phone number."""
    d = deployed
    zone = daytime_zone()
    anchor = (dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=7)).isoformat()
    d.cli("enroll", "--study", "ADUSE", "--site", "TLS", "--subject", "ADU-TLS-151", "--phone", PHONE_V,
          "--language", "en", "--anchor-date", anchor, "--timezone", zone, "--agreed-on", anchor)
    with d.app.app_context(), db.transaction() as s:
        patient = s.scalars(select(Patient).where(Patient.subject_id == "ADU-TLS-151")).one()
        patient.answer_channel = "voice"
        s.execute(update(PatientContact).where(PatientContact.patient_id == patient.id)
                  .values(voice_pin_hash=generate_password_hash(PIN)))
        pid = patient.id
    d.cli("tick")
    wait_for(lambda: any(c.to == PHONE_V for c in d.twilio.calls.values()), "the call to the patient")
    [call] = [c for c in d.twilio.calls.values() if c.to == PHONE_V]
    assert call.url.startswith(d.url + "/voice/answer/")
    phone = CallDriver(d.twilio, call, _Https(d.url, str(d.cert)), d.url)
    phone.pick_up()
    assert phone.last_status == 200 and "PIN" in phone.last
    phone.press(PIN + "#")
    answer_the_questions(phone)
    assert phone.ended and phone.said[-1] == "Your questionnaire is complete. Thank you, goodbye."
    assert phone.last_status == 204                                   # the status callback, through nginx
    with d.app.app_context():
        s = db.session()
        w1 = s.scalars(select(Occurrence).where(Occurrence.patient_id == pid, Occurrence.visit_code == "W1")).one()
        assert w1.status == OccurrenceStatus.COMPLETED
        row = s.scalars(select(SmsMessage).where(SmsMessage.occurrence_id == w1.id)).one()
        assert (row.channel, row.status, row.provider_sid) == ("voice", SmsStatus.DELIVERED, call.sid)
    d.app.extensions["proapp.engine"].dispose()
    for name, text in d.all_logs().items():
        for leak in (PIN, *phone_forms(PHONE_V)):
            assert leak not in text, (name, leak)


def test_the_deployed_stack_end_to_end(deployed, browser):
    d = deployed
    link = sms_link(d, PHONE_A)
    token = link.rsplit("/", 1)[1]
    d.secrets += [token, sms_link(d, PHONE_B).rsplit("/", 1)[1]]
    assert "SuiviPRO" in d.twilio.messages[next(iter(d.twilio.messages))].body

    # The patient, on a 320 px phone, from the SMS.
    phone = browser.new_context(viewport={"width": 320, "height": 568}, has_touch=True, locale="fr-FR",
                                ignore_https_errors=True)
    page = phone.new_page()
    page.goto(link)
    assert page.url == d.url + "/q"
    # The style through nginx under its fingerprinted name, kept a year (one Cache-Control header, not two).
    css = re.search(r'/static/app\.[0-9a-f]{12}\.css', page.content()).group(0)
    static = d.get(css)
    assert static.status_code == 200 and static.raw.headers.getlist("Cache-Control") == [
        "public, max-age=31536000, immutable"]
    go(page, page.get_by_role("link", name="Commencer"))
    page.get_by_label("Non", exact=True).check()            # no new ulcer
    go(page, page.get_by_role("button", name="Suivant"))
    assert "expired" not in page.url and "/q/DU_DIARY.DU_NEW" not in page.url, page.url
    page.get_by_label("Oui", exact=True).check()            # signs of infection: call the team today
    go(page, page.get_by_role("button", name="Suivant"))
    assert "/q/call" in page.url and "Appelez votre équipe d'étude aujourd'hui" in page.content()
    assert page.get_by_role("link", name=re.compile("Appeler le 01 99 00 01 01")).get_attribute("href") == \
        "tel:+33199000101"
    assert page.evaluate("document.documentElement.scrollWidth") <= 320          # readable at 320 px
    go(page, page.get_by_role("link", name="Continuer le questionnaire"))
    for _ in range(9):                                      # antibiotics, the eight complications
        page.get_by_label("Non", exact=True).check()
        go(page, page.get_by_role("button", name="Suivant"))
    page.get_by_role("slider").focus()                      # the pain scale, after the diary
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("PageUp")                       # 30
    go(page, page.get_by_role("button", name="Suivant"))
    assert page.url == d.url + "/q/review"
    go(page, page.locator("button[name=lang][value=en]"))       # the language switch, and back
    assert page.url == d.url + "/q/review" and "Send my answers" in page.content()
    go(page, page.get_by_role("button", name="Send my SMS in English too"))  # asked apart: the SMS follow
    go(page, page.locator("button[name=lang][value=fr]"))
    assert "Envoyer mes réponses" in page.content()
    go(page, page.get_by_role("button", name="Recevoir aussi mes SMS en français"))
    go(page, page.get_by_role("link", name="SMS de rappel"))
    go(page, page.get_by_role("button", name="Arrêter les SMS"))
    assert "Vous ne recevrez plus de SMS de notre part." in page.content()
    go(page, page.get_by_role("link", name="Revenir à mon questionnaire"))
    go(page, page.get_by_role("link", name=re.compile("Continuer|Revoir")))
    go(page, page.get_by_role("button", name="Envoyer mes réponses").first)      # at the top of the review
    assert page.url == d.url + "/q/done" and "Merci, vos réponses ont été envoyées." in page.content()
    assert "tel:+33199000101" in page.content()
    page.goto(link)                                         # the SMS link again, after completion
    assert "Vous avez déjà rempli ce questionnaire." in page.content() and "tel:+33199000101" in page.content()
    phone.close()

    # The research nurse: sign in, pause the other patient's SMS with a reason, sign out.
    desk = browser.new_context(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)
    page = desk.new_page()
    page.goto(d.url + "/staff/")
    page.locator("input[name=email]").fill("nurse@chu.test")
    page.locator("input[name=password]").fill(PASSWORD)
    go(page, page.locator("form button[type=submit]").last)
    # Production: a coordinator signs in with a second factor; her first sign-in sets it up.
    assert page.url == d.url + "/staff/account/two-factor"
    import pyotp

    key = page.inner_text("#totp-key").replace(" ", "")     # shown in groups of four
    totp = pyotp.TOTP(key)
    d.secrets.append(key)
    page.fill("#code", totp.now())
    go(page, page.get_by_role("button", name="Turn on two-factor sign-in"))
    assert page.locator(".codes li").count() == 10
    go(page, page.get_by_role("link", name="Continue"))
    assert page.url == d.url + "/staff/"
    page.goto(d.url + "/staff/patients?q=ADU-TLS-102")
    go(page, page.get_by_role("link", name="ADU-TLS-102"))
    page.locator("#reason-pause").fill("in hospital this week")
    go(page, page.get_by_role("button", name="Pause SMS"))
    assert "in hospital this week" in page.content()
    # The infection alert reached the nurse by e-mail within a worker cycle; she opens it and acknowledges it.
    wait_for(lambda: d.inbox.to("nurse@chu.test") and d.inbox.to("astreinte-tls@aduse.example"),
             "the alert e-mails (site and on-call) at the SMTP server", procs=())
    [mail] = d.inbox.to("nurse@chu.test")
    assert len(d.inbox.to("astreinte-tls@aduse.example")) == 1
    body = mail.get_content()
    alert_url = re.search(r"https://\S+/staff/alerts/[0-9]+", body).group(0)
    assert alert_url.startswith(d.url) and "ADU-TLS-101" in body and "signs of infection" in body
    for secret in (*d.secrets, *phone_forms(PHONE_A), "100", "Yes"):       # no token, number or answer
        assert secret not in body, secret
    page.goto(alert_url)
    page.get_by_label("Called the patient").check()
    page.locator("#note").fill("called back, seen today")
    go(page, page.get_by_role("button", name="Acknowledge the alert"))
    assert "Alert acknowledged." in page.content()
    go(page, page.get_by_role("button", name="Sign out"))
    page.goto(d.url + "/staff/")
    assert "/staff/login" in page.url
    desk.close()

    # The EDC's nightly job, over TLS with the certificate checked: every format, paged one at a time.
    auth = {"Authorization": f"Bearer {d.api_key}"}
    pulled = d.get("/api/v1/studies/ADUSE/responses", headers=auth).json()
    # This patient's two responses, and those of the tests before this one on this stack (a diary answered by SMS
    # replies or in a call: its pain as the 0-10 rating PAIN_NRS).
    assert {"PAIN_VAS", "DU_DIARY"} <= {r["instrument"]["code"] for r in pulled["data"]} <= {
        "PAIN_VAS", "DU_DIARY", "PAIN_NRS"}
    assert next(r for r in pulled["data"] if r["instrument"]["code"] == "PAIN_VAS")["answers"]["PAIN_VAS"] == "30"
    for fmt in ("json", "csv", "odm", "fhir", "redcap"):
        cursor, pages = None, 0
        while True:
            resp = d.get("/api/v1/studies/ADUSE/responses", headers=auth,
                         params={"format": fmt, "limit": 1, **({"cursor": cursor} if cursor else {})})
            assert resp.status_code == 200, (fmt, resp.status_code, resp.text[:300])
            pages += 1
            cursor = resp.headers["X-Next-Cursor"]
            if resp.headers["X-Has-More"] == "false":
                break
        assert pages == len(pulled["data"]), fmt    # every response, one a page
    # REDCap in one step: the project's dictionary, and a Questionnaire at its canonical URL.
    dictionary = d.get("/api/v1/studies/ADUSE/metadata", headers=auth, params={"format": "redcap"})
    assert dictionary.status_code == 200 and dictionary.text.startswith("Variable / Field Name,Form Name,")
    questionnaire = d.get("/api/v1/studies/ADUSE/responses", headers=auth, params={"format": "fhir"}).json()
    url = questionnaire["entry"][0]["resource"]["questionnaire"].split("|")[0]
    assert url.startswith(d.url + "/api/v1/fhir/Questionnaire/"), url
    resolved = d.get(url.removeprefix(d.url), headers=auth)
    assert resolved.status_code == 200 and resolved.json()["url"] == url

    # Twilio reports the invitation delivered, signed for the public URL.
    sid = next(sid for sid, m in d.twilio.messages.items() if m.to == PHONE_A)
    url, params, signature = d.twilio.callback(sid, "delivered")
    assert url.startswith(d.url + "/sms/status/")
    report = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, verify=str(d.cert),
                           timeout=30)
    assert report.status_code in (200, 204), report.text[:200]
    forged = requests.post(url, data={**params, "MessageStatus": "failed"}, headers={"X-Twilio-Signature": signature},
                           verify=str(d.cert), timeout=30)
    assert forged.status_code == 403

    # Plain HTTP is sent to HTTPS; a forged Host is refused.
    assert requests.get(d.http_url + "/q", allow_redirects=False, timeout=10).headers["Location"] == d.url + "/q"
    assert requests.get(d.url + "/staff/login", headers={"Host": "evil.example"}, verify=str(d.cert),
                        timeout=10).status_code == 400

    # What the database holds.
    from proapp.audit.models import AuditEvent
    from proapp.patients.models import Occurrence, Patient, PatientContact
    from proapp.questionnaire.models import Answer, Response
    from proapp.sms.models import SmsMessage

    with d.app.app_context():
        s = db.session()
        a = s.scalar(select(Patient).where(Patient.subject_id == "ADU-TLS-101"))
        b = s.scalar(select(Patient).where(Patient.subject_id == "ADU-TLS-102"))
        answers = dict(s.execute(select(Answer.item_code, Answer.value).join(Response).join(Occurrence)
                                 .where(Occurrence.patient_id == a.id)).all())
        assert answers == {"PAIN_VAS": "30", "DU_NEW": "N", "DU_INFECT": "Y", "DU_ANTIBIO": "N", "DU_NECROSIS": "N",
                           "DU_HOSPITAL": "N", "DU_SURGERY": "N", "DU_INJECTED": "N", "DU_HARVEST": "N",
                           "DU_ISCHAEMIA": "N", "DU_BONE": "N", "DU_AMPUTATION": "N"}
        assert s.scalar(select(func.count()).select_from(Response).join(Occurrence).where(
            Occurrence.patient_id == a.id, Response.completed_at.is_not(None))) == 2
        assert s.get(PatientContact, a.id).opted_out_at is not None
        assert s.get(PatientContact, b.id).sms_paused_at is not None
        assert s.scalar(select(SmsMessage.status).where(SmsMessage.patient_id == a.id)) == "delivered"
        actions = [(e.action, e.actor) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        by_patient = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.patient_id == a.id)
                                                  .order_by(AuditEvent.id)) if e.actor.startswith("patient:link:")]
        assert by_patient.count("answer.saved") == 12         # each answer saved once
        for needed in ("patient.language_changed", "patient.sms_opt_out", "response.completed"):
            assert needed in by_patient, needed
        assert by_patient.count("patient.language_changed") == 2
        staff = [act for act, actor in actions if actor == "user:nurse@chu.test"]
        assert {"user.login", "patient.sms_pause", "alert.acknowledged", "user.logout"} <= set(staff), staff
        assert ("alert.raised", "system:alerts") in actions and ("alert.notification_sent", "system:alerts") in actions
        assert ("sms.status", "system:sms") in actions
        assert sum(act == "api.request" for act, _ in actions) == 1 + 5 * len(pulled["data"]) + 3  # every pull
    d.app.extensions["proapp.engine"].dispose()

    # Monitoring: gunicorn answers /metrics and /readyz to this host (the scrape), nginx never to the public.
    direct = f"http://{d.env['PROAPP_BIND']}"
    ready = requests.get(f"{direct}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    scraped = requests.get(f"{direct}/metrics", timeout=10)
    assert scraped.status_code == 200
    from prometheus_client.parser import text_string_to_metric_families

    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert got[("proapp_outbox_messages", (("channel", "sms"), ("status", "delivered")))] >= 1
    from proapp.alerts.models import Alert, AlertState

    with d.app.app_context():                              # the other tests' alerts (an urgent one) may be open
        open_alerts = db.session().scalar(select(func.count()).select_from(Alert).where(Alert.state == AlertState.OPEN))
    d.app.extensions["proapp.engine"].dispose()
    assert got[("proapp_ready", ())] == 1 and got[("proapp_alerts_open", ())] == open_alerts
    assert any(name == "proapp_worker_heartbeat_age_seconds" and value < 60 for (name, _), value in got.items())
    assert sum(v for (name, labels), v in got.items() if name == "proapp_http_requests_total"
               and ("route", "/s/<token>") in labels) >= 2       # counted across gunicorn's two processes
    assert d.get("/metrics").status_code == 404 and d.get("/readyz").status_code == 404

    # No log holds a secret: link tokens, phone numbers in any form, the password, keys.
    d.stop()
    logs = d.all_logs()
    assert {"gunicorn.log", "worker.log", "proapp.access.log", "proapp.error.log"} <= set(logs), sorted(logs)
    assert "/s/[redacted]" in logs["proapp.access.log"] and "/s/[redacted]" in logs["gunicorn.log"]
    forbidden = [*d.secrets, *phone_forms(PHONE_A), *phone_forms(PHONE_B), *phone_forms(PHONE_C)]
    for name, text in logs.items():
        for secret in forbidden:
            assert secret not in text, f"{name} holds {secret[:6]}..."
