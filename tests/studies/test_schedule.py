"""Schedules: windows on local calendar days, converted to exact UTC instants, across DST and year ends."""

from datetime import UTC, date, datetime, timedelta

import pytest

from proapp.instruments import default_registry
from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, load_studies
from proapp.studies.schedule import compute_schedule


@pytest.fixture(scope="module")
def catalog():
    return load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS, demo_contacts=True)


def by_code(planned):
    return {p.visit_code: p for p in planned}


def test_imatinib_visits_and_windows(catalog):
    s = by_code(compute_schedule(catalog.get("IMATINIB-SSC"), date(2026, 1, 10), "Europe/Paris"))
    assert list(s) == ["M0", "M1", "M3", "M6", "M12"]
    assert (s["M0"].opens_on, s["M0"].closes_on) == (date(2026, 1, 3), date(2026, 1, 10))       # baseline -7/0
    assert (s["M1"].opens_on, s["M1"].closes_on) == (date(2026, 2, 2), date(2026, 2, 16))       # day 30 -7/+7
    assert (s["M3"].opens_on, s["M3"].closes_on) == (date(2026, 4, 3), date(2026, 4, 17))       # day 90
    assert (s["M6"].opens_on, s["M6"].closes_on) == (date(2026, 7, 2), date(2026, 7, 16))       # day 180
    assert (s["M12"].opens_on, s["M12"].closes_on) == (date(2027, 1, 3), date(2027, 1, 17))     # day 365
    assert all(p.instruments == ("DLQI", "HAQ", "TOLERANCE") for p in s.values())   # the checklist last


def test_aduse_visits_and_windows(catalog):
    s = by_code(compute_schedule(catalog.get("ADUSE"), date(2026, 3, 2), "Europe/Paris"))
    assert len(s) == 18                                    # W0, W1..W16, W16Q
    # Before the injection, ending the day before it (study file version 5): days -3 to -1.
    assert (s["W0"].due_on, s["W0"].opens_on, s["W0"].closes_on) == (date(2026, 3, 1), date(2026, 2, 27),
                                                                     date(2026, 3, 1))
    # The ulcer inventory and the pain baseline before the injection.
    assert s["W0"].instruments == ("DU_BASELINE", "PAIN_VAS", "DLQI", "HAQ")
    for k in range(1, 17):
        due = date(2026, 3, 2) + timedelta(days=7 * k)
        assert (s[f"W{k}"].opens_on, s[f"W{k}"].closes_on) == (due, due + timedelta(days=3))
        assert s[f"W{k}"].instruments == ("DU_DIARY", "PAIN_VAS")       # the pain scale after the diary
    assert (s["W16Q"].opens_on, s["W16Q"].closes_on) == (date(2026, 6, 19), date(2026, 6, 29))   # day 112 -3/+7
    assert s["W16Q"].instruments == ("DLQI", "HAQ")


def test_window_instants_are_local_midnights_in_paris_winter(catalog):
    s = by_code(compute_schedule(catalog.get("ADUSE"), date(2026, 1, 5), "Europe/Paris"))
    # W1 opens 2026-01-12 00:00 CET (UTC+1) and ends after 2026-01-15, at 2026-01-16 00:00 CET
    assert s["W1"].opens_at == datetime(2026, 1, 11, 23, 0, tzinfo=UTC)
    assert s["W1"].closes_at == datetime(2026, 1, 15, 23, 0, tzinfo=UTC)


def test_window_spanning_the_spring_dst_change_is_one_hour_shorter(catalog):
    # Paris moves to summer time on Sunday 2026-03-29. W1 of an anchor on 2026-03-20 runs 03-27..03-30.
    s = by_code(compute_schedule(catalog.get("ADUSE"), date(2026, 3, 20), "Europe/Paris"))["W1"]
    assert s.opens_at == datetime(2026, 3, 26, 23, 0, tzinfo=UTC)    # CET, UTC+1
    assert s.closes_at == datetime(2026, 3, 30, 22, 0, tzinfo=UTC)   # CEST, UTC+2
    assert s.closes_at - s.opens_at == timedelta(days=4, hours=-1)


def test_window_spanning_the_autumn_dst_change_is_one_hour_longer(catalog):
    # Back to winter time on Sunday 2026-10-25. W1 of an anchor on 2026-10-17 runs 10-24..10-27.
    s = by_code(compute_schedule(catalog.get("ADUSE"), date(2026, 10, 17), "Europe/Paris"))["W1"]
    assert s.opens_at == datetime(2026, 10, 23, 22, 0, tzinfo=UTC)   # CEST
    assert s.closes_at == datetime(2026, 10, 27, 23, 0, tzinfo=UTC)  # CET
    assert s.closes_at - s.opens_at == timedelta(days=4, hours=1)


@pytest.mark.parametrize(("tz", "offset_hours"), [("America/Guadeloupe", -4), ("Indian/Reunion", 4)])
def test_overseas_zones_have_no_dst_and_their_own_midnight(catalog, tz, offset_hours):
    for anchor in (date(2026, 1, 5), date(2026, 7, 6)):
        s = by_code(compute_schedule(catalog.get("ADUSE"), anchor, tz))["W1"]
        local_midnight = datetime.combine(s.opens_on, datetime.min.time(), tzinfo=UTC)
        assert s.opens_at == local_midnight - timedelta(hours=offset_hours)
        assert s.closes_at - s.opens_at == timedelta(days=4)


def test_same_anchor_gives_different_instants_in_each_zone(catalog):
    anchor = date(2026, 5, 4)
    instants = {tz: by_code(compute_schedule(catalog.get("ADUSE"), anchor, tz))["W1"].opens_at
                for tz in ("Europe/Paris", "America/Guadeloupe", "Indian/Reunion")}
    assert instants == {
        "Europe/Paris": datetime(2026, 5, 10, 22, 0, tzinfo=UTC),
        "America/Guadeloupe": datetime(2026, 5, 11, 4, 0, tzinfo=UTC),
        "Indian/Reunion": datetime(2026, 5, 10, 20, 0, tzinfo=UTC),
    }


def test_windows_across_the_year_end(catalog):
    s = by_code(compute_schedule(catalog.get("ADUSE"), date(2026, 12, 24), "Europe/Paris"))
    assert (s["W1"].opens_on, s["W1"].closes_on) == (date(2026, 12, 31), date(2027, 1, 3))
    assert s["W1"].closes_at == datetime(2027, 1, 3, 23, 0, tzinfo=UTC)
    m12 = by_code(compute_schedule(catalog.get("IMATINIB-SSC"), date(2025, 12, 31), "Indian/Reunion"))["M12"]
    assert (m12.opens_on, m12.closes_on) == (date(2026, 12, 24), date(2027, 1, 7))


def test_leap_day_anchor(catalog):
    m12 = by_code(compute_schedule(catalog.get("IMATINIB-SSC"), date(2028, 2, 29), "Europe/Paris"))["M12"]
    assert m12.opens_on == date(2029, 2, 21)  # day 365 = 2029-02-28, minus 7 days
