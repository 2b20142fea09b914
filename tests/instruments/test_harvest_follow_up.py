"""Issue 30: the fat-harvest question follows the liposuction. The study file declares how many days after it the
harvest site is followed (``fat_harvest``, checked at start-up); an entry asks DU_HARVEST when its window overlaps
the liposuction day and those days, counted on the patient's calendar; the diary's version 2.3 asks the first one
"since the fat was taken". The pages are tested in tests/dashboard/test_harvest_date.py."""

from __future__ import annotations

from datetime import date

import pytest
import yaml
from pydantic import ValidationError

from proapp.instruments import default_registry
from proapp.studies.catalog import DATA_DIR, DEMO_CONTACTS, load_studies
from proapp.studies.schedule import compute_schedule
from proapp.studies.schema import FatHarvest, StudyDef


@pytest.fixture(scope="module")
def aduse():
    return load_studies(DATA_DIR, default_registry(), DEMO_CONTACTS, demo_contacts=True).get("ADUSE")


def _followed(study: StudyDef, anchor: date, taken_on: date, tz: str = "Europe/Paris") -> list[str]:
    """The diary visits whose window overlaps the harvest site's follow-up."""
    assert study.fat_harvest is not None
    return [p.visit_code for p in compute_schedule(study, anchor, tz)
            if "DU_DIARY" in p.instruments and study.fat_harvest.followed(taken_on, tz, p.opens_at, p.closes_at)]


def test_aduse_follows_the_harvest_site_28_days_with_the_diary_2_3(aduse):
    assert aduse.fat_harvest == FatHarvest(follow_up_days=28)
    assert aduse.instruments["DU_DIARY"].version == "2.3" and aduse.version == "6"
    text = (DATA_DIR / "ADUSE.yaml").read_text()
    assert "TO BE CONFIRMED BY THE SPONSOR" in text       # the protocol gives no length: the project's proposal


def test_the_entries_whose_window_overlaps_the_weeks_after_the_liposuction(aduse):
    injection = date(2026, 3, 20)                 # W1 03-27..03-30, W2 04-03..04-06, W3 04-10..04-13
    # Liposuction two weeks before: its 28th day after is W2's first day (04-03): W1 and W2; a day earlier, W1.
    assert _followed(aduse, injection, date(2026, 3, 6)) == ["W1", "W2"]
    assert _followed(aduse, injection, date(2026, 3, 5)) == ["W1"]
    # Three weeks before: its last day is W1's first (03-27); a day earlier (cells cultured longer, the injection
    # postponed), the follow-up is over before the first diary.
    assert _followed(aduse, injection, date(2026, 2, 27)) == ["W1"]
    assert _followed(aduse, injection, date(2026, 2, 26)) == []
    # Counted on the patient's calendar: the same days in Nouméa (UTC+11) as in Paris.
    assert _followed(aduse, injection, date(2026, 3, 6), "Pacific/Noumea") == ["W1", "W2"]
    assert _followed(aduse, injection, date(2026, 3, 5), "Pacific/Noumea") == ["W1"]


def test_the_study_file_declares_a_follow_up_of_some_days_and_an_instrument_that_asks(aduse):
    raw = yaml.safe_load((DATA_DIR / "ADUSE.yaml").read_text())
    raw["sites"][0]["phone"] = "+33199000101"
    assert StudyDef.model_validate(raw).fat_harvest is not None
    for days in (0, 400, "four weeks"):
        with pytest.raises(ValidationError, match="follow_up_days"):
            StudyDef.model_validate({**raw, "fat_harvest": {"follow_up_days": days}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        StudyDef.model_validate({**raw, "fat_harvest": {"follow_up_days": 28, "weeks": 4}})
    without = {**raw, "instruments": {**raw["instruments"], "DU_DIARY": {"version": "2.3"}}}
    with pytest.raises(ValidationError, match="no instrument asks about the harvest site"):
        StudyDef.model_validate(without)


def test_the_first_entry_that_asks_it_asks_since_the_fat_was_taken():
    registry = default_registry()
    item = registry.get("DU_DIARY", "2.3").item("DU_HARVEST")
    assert item.requires == "fat_harvest_site" and list(item.text_when or {}) == ["first_harvest_entry"]
    assert item.text_for("en", situation="first_harvest_entry") == (
        "Since the fat was taken for the injection, have you had a problem where it was taken (pain, swelling, "
        "redness, bruising or bleeding)?")
    assert item.text_for("fr", situation="first_harvest_entry").startswith(
        "Depuis le prélèvement de la graisse pour l'injection")
    # The diary's first entry no longer says "since the injection" about the harvest site (the liposuction was
    # before it); later ones ask since the last entry, as before.
    assert item.text_for("en", situation="first_entry") == item.text_for("en")
    assert item.text_for("en").startswith("Since your last entry")
    # Every other item of 2.3 reads as in 2.2.
    old, new = registry.get("DU_DIARY", "2.2"), registry.get("DU_DIARY", "2.3")
    assert [i for i in old.items if i.code != "DU_HARVEST"] == [i for i in new.items if i.code != "DU_HARVEST"]
