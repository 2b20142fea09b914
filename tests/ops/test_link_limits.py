"""Patients behind one address: a mobile carrier puts many subscribers behind one (CGNAT). Working links are
never limited by address; guessing stays throttled per network (IPv4 /24), and one link per link."""

from __future__ import annotations

from tests.conftest import fresh_app
from tests.questionnaire.helpers import enrol_with_open_window

CARRIER = {"REMOTE_ADDR": "198.51.100.7"}
NEIGHBOUR = {"REMOTE_ADDR": "198.51.100.200"}            # the same carrier's /24
ELSEWHERE = {"REMOTE_ADDR": "203.0.113.5"}


def test_patients_sharing_a_carrier_address_all_get_in_and_guessing_is_still_throttled(database_url, instance_dir,
                                                                                       rate_window):
    app = fresh_app(database_url, RATE_LINK_PER_MINUTE=30, RATE_LINK_PER_TOKEN=5)
    try:
        tokens = [enrol_with_open_window(app, subject=f"ADU-TLS-{300 + i}")[1] for i in range(45)]
        client = app.test_client()
        opened = [client.get(f"/s/{t}", environ_base=CARRIER).status_code for t in tokens]
        assert opened == [303] * 45                       # more than the 30 a minute of the old per-address limit
        # One link opened over and over is limited on its own.
        again = [client.get(f"/s/{tokens[0]}", environ_base=ELSEWHERE).status_code for _ in range(5)]
        assert again == [303] * 4 + [429]
        # Guessing from the carrier's network: 30 tries, then 429 for the whole /24, not for other networks.
        guesses = [client.get(f"/s/{'g' * 20}{i:03d}", environ_base=CARRIER).status_code for i in range(31)]
        assert guesses == [404] * 30 + [429]
        assert client.get("/s/" + "h" * 23, environ_base=NEIGHBOUR).status_code == 429
        assert client.get("/s/" + "h" * 23, environ_base=ELSEWHERE).status_code == 404
    finally:
        app.extensions["proapp.engine"].dispose()
