"""Instrument files: the shipped ones are complete; a malformed one names the file and the field."""

import shutil
from pathlib import Path

import pytest
import yaml

from proapp.instruments import default_registry, load_directory, load_file
from proapp.instruments.registry import DATA_DIR, InstrumentFileError

DLQI_COPYRIGHT = ("© Dermatology Life Quality Index. A Y Finlay, G K Khan, April 1992 www.dermatology.org.uk. "
                  "This must not be copied without the permission of the authors.")


def test_the_instruments_with_both_languages_and_a_licence_note():
    reg = default_registry()
    assert reg.codes() == ["DLQI", "DU_BASELINE", "DU_DIARY", "HAQ", "PAIN_NRS", "PAIN_VAS", "TOLERANCE"]
    # The scleroderma HAQ VAS and the pain VAS carry their licensing notes like the DLQI and the HAQ.
    assert "Scleroderma HAQ VAS: published by Steen and Medsger" in " ".join(reg.get("HAQ").licence.split())
    assert "public-domain method (Huskisson 1974)" in " ".join(reg.get("PAIN_VAS").licence.split())
    for inst in reg.all():
        assert set(inst.languages) == {"en", "fr"}
        for item in inst.items:
            assert item.text.en.strip() and item.text.fr.strip()
            assert item.text.en != item.text.fr, item.code


def test_item_codes_match_the_reference():
    reg = default_registry()
    assert [i.code for i in reg.get("DLQI").items] == [
        "DLQI01", "DLQI02", "DLQI03", "DLQI04", "DLQI05", "DLQI06", "DLQI07A", "DLQI07B", "DLQI08", "DLQI09",
        "DLQI10"]
    assert [i.code for i in reg.get("DU_DIARY", "1.0").items] == [
        "DU_NEW", "DU_HAND", "DU_FINGER", "DU_SITE", "DU_ONSET", "DU_PAIN", "DU_INFECT", "DU_ANTIBIO", "DU_HEALED"]
    # Version 2: the known ulcers first, one pain scale (the study's pain VAS, after it), complications.
    assert [i.code for i in reg.get("DU_DIARY", "2.0").items] == [
        "DU_CONFIRM_OK", "DU_KNOWN_CLOSED", "DU_KNOWN_CLOSED_ON", "DU_NEW", "DU_HAND", "DU_FINGER", "DU_SITE",
        "DU_ONSET", "DU_INFECT", "DU_ANTIBIO", "DU_NECROSIS", "DU_HOSPITAL", "DU_SURGERY", "DU_INJECTED",
        "DU_HARVEST"]
    assert "CALC" in reg.get("DU_DIARY", "2.0").item("DU_SITE").allowed_values()
    assert [i.code for i in reg.get("PAIN_VAS").items] == ["PAIN_VAS"]
    haq = reg.get("HAQ")
    assert len([i for i in haq.items if i.role == "activity"]) == 20
    assert [i.code for i in haq.items if i.role == "vas"] == [
        "HAQ_PAIN", "HAQ_GLOBAL", "SHAQ_RAYNAUD", "SHAQ_DU", "SHAQ_GI", "SHAQ_BREATH", "SHAQ_OVERALL"]


def test_dlqi_carries_the_required_copyright_line_on_every_screen():
    dlqi = default_registry().get("DLQI")
    assert " ".join(dlqi.copyright.split()) == DLQI_COPYRIGHT
    assert dlqi.show_copyright_on_every_screen is True


def test_dlqi_7b_only_when_7a_is_no_and_ulcers_only_when_new():
    reg = default_registry()
    assert reg.get("DLQI").item("DLQI07B").show_if == {"DLQI07A": "N"}
    group = reg.get("DU_DIARY").group("DU_ULCER")
    assert (group.max_repeats, group.show_if) == (10, {"DU_NEW": "Y"})


def test_vas_items_have_anchors_in_both_languages():
    for inst in default_registry().all():
        for item in inst.items:
            if item.type == "vas":
                assert item.anchors.low.fr and item.anchors.high.en


def test_unvalidated_wording_is_listed():
    pairs = {(i.code, lang) for i, lang in default_registry().unvalidated()}
    # No wording shipped here has been checked against a licensed copy: all are flagged.
    assert ("DLQI", "fr") in pairs and ("HAQ", "fr") in pairs


def copy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "instruments"
    shutil.copytree(DATA_DIR, target)
    return target


def edit(path: Path, mutate) -> None:
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["items"][0]["text"].pop("fr"), "items.0.text.fr: Field required"),
    (lambda d: d["items"][0].update(type="slider"), "items.0.type"),
    (lambda d: d["items"][0].update(options="colours"), "items.0.options: no option set named 'colours'"),
    (lambda d: d["items"][7].update(show_if={"DLQI07A": "MAYBE"}), "'MAYBE' is not a value of DLQI07A"),
    (lambda d: d["items"][7].update(show_if={"DLQI99": "N"}), "no item named 'DLQI99'"),
    (lambda d: d["items"].append(dict(d["items"][0])), "DLQI01 appears twice"),
    (lambda d: d["languages"].pop("fr"), "missing language status for fr"),
    (lambda d: d.pop("copyright"), "copyright: Field required"),
    (lambda d: d["languages"]["en"].update(validated="perhaps"), "languages.en.validated"),
])
def test_malformed_instrument_file_names_file_and_field(tmp_path, mutate, message):
    folder = copy_dir(tmp_path)
    edit(folder / "DLQI-1.0.yaml", mutate)
    with pytest.raises(InstrumentFileError) as exc:
        load_directory(folder)
    assert str(exc.value).startswith("instrument file DLQI-1.0.yaml: ")
    assert message in str(exc.value)


def test_vas_without_anchors(tmp_path):
    folder = copy_dir(tmp_path)
    edit(folder / "PAIN_VAS-1.0.yaml", lambda d: d["items"][0].pop("anchors"))
    with pytest.raises(InstrumentFileError, match=r"PAIN_VAS-1.0.yaml: items.0: a vas item needs anchors"):
        load_directory(folder)


def test_file_name_must_match_code_and_version(tmp_path):
    folder = copy_dir(tmp_path)
    (folder / "DLQI-1.0.yaml").rename(folder / "dlqi.yaml")
    with pytest.raises(InstrumentFileError, match=r"should be named DLQI-1.0.yaml"):
        load_file(folder / "dlqi.yaml")


def test_instrument_without_scoring_function(tmp_path):
    folder = copy_dir(tmp_path)
    edit(folder / "PAIN_VAS-1.0.yaml", lambda d: d.update(code="ITCH_VAS"))
    (folder / "PAIN_VAS-1.0.yaml").rename(folder / "ITCH_VAS-1.0.yaml")
    with pytest.raises(InstrumentFileError, match="no scoring function for ITCH_VAS"):
        load_directory(folder)


def test_two_versions_side_by_side_newest_is_default(tmp_path):
    folder = copy_dir(tmp_path)
    data = yaml.safe_load((folder / "DLQI-1.0.yaml").read_text())
    data["version"] = "1.10"
    (folder / "DLQI-1.10.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    reg = load_directory(folder)
    assert reg.get("DLQI").version == "1.10"           # 1.10 is newer than 1.0 (not compared as text)
    assert reg.get("DLQI", "1.0").version == "1.0"


def test_malformed_file_stops_app_start_up(tmp_path, instance_dir):
    from tests.conftest import make_app

    folder = copy_dir(tmp_path)
    edit(folder / "HAQ-1.0.yaml", lambda d: d["items"][3].pop("code"))
    with pytest.raises(InstrumentFileError, match=r"HAQ-1.0.yaml: items.3.code: Field required"):
        make_app("sqlite://", INSTRUMENTS_DIR=str(folder))
