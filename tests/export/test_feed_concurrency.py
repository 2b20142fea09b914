"""The feed's guarantee under concurrent writers: a reader following the cursor never misses a response and
never gets one twice, even when transactions commit out of order (a lower id committing after a higher one)."""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from proapp.patients.models import Occurrence
from proapp.questionnaire.models import Response, ResponseStatus
from tests.export.conftest import auth, make_key
from tests.questionnaire.helpers import enrol_with_open_window

WRITERS = 6
PER_WRITER = 15


@pytest.mark.requirement("EXPORT")
def test_reader_never_misses_nor_repeats_while_writers_commit_out_of_order(app, dialect):
    key = make_key(app)
    with app.app_context():
        from proapp import db

        pids = [enrol_with_open_window(app, "ADUSE", "W1", subject=f"ADU-TLS-{n:03d}")[0] for n in range(1, 4)]
        occurrences = list(db.session().scalars(select(Occurrence.id).where(Occurrence.patient_id.in_(pids))))
    slots = [(occ, inst) for occ in occurrences for inst in ("PAIN_VAS", "DU_DIARY", "DLQI")]
    random.Random(7).shuffle(slots)
    slots = slots[:WRITERS * PER_WRITER]
    make_session = app.extensions["proapp.sessionmaker"]
    committed: list[tuple[int, float]] = []
    lock = threading.Lock()
    done = threading.Event()

    def writer(mine):
        rng = random.Random(len(mine))
        for occ, inst in mine:
            with make_session() as s:
                now = datetime.now(UTC)
                r = Response(occurrence_id=occ, instrument_code=inst, instrument_version="1.0", language="fr",
                             status=ResponseStatus.COMPLETED, started_at=now, last_saved_at=now, completed_at=now,
                             completed_on_site=False, scores={})
                s.add(r)
                s.flush()                          # the id is taken now ...
                time.sleep(rng.uniform(0, 0.03))   # ... and committed later, possibly after higher ids
                s.commit()
                with lock:
                    committed.append((r.id, time.monotonic()))

    seen: list[int] = []
    errors: list[str] = []

    def reader():
        client = app.test_client()
        cursor = None
        last_round = False
        while True:
            query = "?limit=7" + (f"&cursor={cursor}" if cursor else "")
            resp = client.get(f"/api/v1/studies/ADUSE/responses{query}", headers=auth(key))
            if resp.status_code != 200:
                errors.append(resp.get_data(as_text=True))
                return
            body = resp.get_json()
            seen.extend(item["id"] for item in body["data"])
            cursor = body["next_cursor"]
            if not body["has_more"]:
                if last_round:
                    return
                if done.is_set():
                    last_round = True          # one more pass after every writer has committed
                time.sleep(0.005)

    chunks = [slots[i::WRITERS] for i in range(WRITERS)]
    threads = [threading.Thread(target=writer, args=(c,)) for c in chunks]
    read = threading.Thread(target=reader)
    read.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    read.join(timeout=120)
    assert not errors, errors[:1]
    written = sorted(i for i, _ in committed)
    assert len(written) == len(slots)
    assert len(seen) == len(set(seen)), "a response was returned twice"
    assert sorted(seen) == written, f"missed: {sorted(set(written) - set(seen))}"
    if dialect == "postgresql":
        by_commit = [i for i, _ in sorted(committed, key=lambda c: c[1])]
        out_of_order = any(later < earlier for earlier, later in itertools.pairwise(by_commit))
        assert out_of_order, "the writers never committed out of order: the test proved nothing"
