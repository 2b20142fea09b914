"""The shipped deployment files as the host reads them: the environment file with systemd's rules, the units'
sandbox (the code's tree read-only, as ``ProtectSystem=strict`` makes it), gunicorn's control socket."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from proapp.studies.catalog import DEMO_CONTACTS
from tests.conftest import PRODUCTION_STUDIES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "proapp" / "deploy"


def systemd_environment_file(text: str) -> dict[str, str]:
    """What systemd's EnvironmentFile= makes of a file (systemd.exec(5)): comment lines start with # or ;, a
    NAME=value per line, whitespace around the value dropped, one pair of enclosing quotes removed; a "#" after a
    value is part of the value."""
    env = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        name, sep, value = line.partition("=")
        assert sep, f"not NAME=value: {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value
    return env


def filled_example() -> dict[str, str]:
    env = systemd_environment_file((DEPLOY / "proapp.env.example").read_text())
    return env | {"PROAPP_SECRET_KEY": "s" * 64, "PROAPP_PHONE_KEYS": Fernet.generate_key().decode(),
                  "PROAPP_AUDIT_KEYS": "k1:" + "ab" * 32, "PROAPP_TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
                  "PROAPP_TWILIO_AUTH_TOKEN": "f" * 32, "PROAPP_TWILIO_MESSAGING_SERVICE_SID": "MG" + "2" * 32,
                  "PROAPP_SITE_CONTACTS": str(DEMO_CONTACTS)}


def test_the_example_environment_file_read_as_systemd_reads_it_starts_production():
    from proapp.ops import app_config

    env = systemd_environment_file((DEPLOY / "proapp.env.example").read_text())
    assert not [v for v in env.values() if "#" in v], "a comment after a value becomes part of the value"
    for needed in ("PROAPP_SITE_CONTACTS", "PROAPP_MAIL_GATEWAY", "PROAPP_SMTP_URL", "PROAPP_MAIL_FROM",
                   "PROAPP_PHONE_KEYS", "PROAPP_AUDIT_KEYS", "PROAPP_SECRET_KEY"):
        assert needed in env
    saved = {k: v for k, v in os.environ.items() if k.startswith("PROAPP_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update(filled_example())
        cfg = app_config(ROOT / "instance", overrides=None)
    finally:
        for k in [k for k in os.environ if k.startswith("PROAPP_")]:
            del os.environ[k]
        os.environ.update(saved)
    assert cfg["PRODUCTION"] and cfg["PROXY_HOPS"] == 1 and cfg["MAIL_GATEWAY"] == "smtp"


def test_the_units_keep_the_code_read_only_and_write_only_the_instance_folder():
    for unit in ("proapp-web.service", "proapp-worker.service"):
        text = (DEPLOY / unit).read_text()
        assert "ProtectSystem=strict" in text and "ReadWritePaths=/var/lib/proapp" in text
        assert "EnvironmentFile=/etc/proapp/proapp.env" in text
    assert "RuntimeDirectory=%N" in (DEPLOY / "proapp-web.service").read_text()


def test_the_app_starts_from_a_read_only_tree_as_under_protect_system_strict(tmp_path):
    """The app and `proapp check` start with the code's tree mounted read-only (a private mount namespace, as
    systemd does), stale catalogues included: nothing is compiled at start-up in production. The tree is a copy
    installed as .ci/setup does (catalogues compiled), so the other test processes, whose development apps compile
    the project's own catalogues, cannot race with it."""
    tree = tmp_path / "tree"
    for part in ("proapp", "translations", "templates"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    po = tree / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
    instance = tmp_path / "instance"
    instance.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROAPP_")} | filled_example() | {
        "PROAPP_INSTANCE_PATH": str(instance), "PROAPP_DATABASE_URL": f"sqlite:///{instance}/p.sqlite3",
        "PROAPP_STUDIES_DIR": str(PRODUCTION_STUDIES),     # production refuses study files without information:
        "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-m", "proapp.i18n"], cwd=tree, env=env, check=True, capture_output=True)
    start = (f"mount --bind {tree} {tree} && mount -o remount,bind,ro {tree} && "
             f"{sys.executable} -c 'import proapp; assert proapp.__file__.startswith(\"{tree}\"); "
             f"from proapp import create_app; create_app(); print(\"started\")'")
    ok = subprocess.run(["unshare", "-m", "sh", "-c", start], env=env, cwd=tree, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0 and "started" in ok.stdout, ok.stderr[-2000:]
    # A catalogue edited after install: production refuses to start with a clear message instead of writing
    # into the read-only tree (the install step compiles it).
    mtime = po.stat().st_mtime
    mo = po.with_suffix(".mo")
    os.utime(mo, (mtime - 10, mtime - 10))
    stale = subprocess.run(["unshare", "-m", "sh", "-c", start], env=env, cwd=tree, capture_output=True,
                           text=True, timeout=120)
    assert stale.returncode != 0 and "Errno 30" not in stale.stderr
    assert "run python -m proapp.i18n" in stale.stderr


def test_two_gunicorn_instances_get_their_own_control_socket(tmp_path, monkeypatch):
    sockets = []
    # gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR in os.environ (for gunicorn's processes): set through
    # monkeypatch first, so that it is restored (unset) after the test instead of leaking into the next ones.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    for bind in ("127.0.0.1:8000", "127.0.0.1:8001"):
        monkeypatch.setenv("PROAPP_BIND", bind)
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
        settings: dict = {}
        exec(compile((DEPLOY / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), settings)
        sockets.append(settings["control_socket"])
    assert len(set(sockets)) == 2 and all(s.startswith(str(tmp_path)) for s in sockets)
