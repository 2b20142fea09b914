"""The alerts and their acknowledgements for the sponsor's safety desk (JSON and CSV), within the key's scope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proapp.alerts.models import Alert, AlertNotification, NotificationStatus
from proapp.alerts.raising import minutes_between
from proapp.export.formats.common import iso
from proapp.export.models import ApiKey
from proapp.patients.models import Occurrence, Patient
from proapp.studies.models import Site

CSV_COLUMNS = ("alert_id", "subject_id", "site", "visit", "rule", "rule_label_en", "rule_label_fr", "severity",
               "source", "raised_at", "first_notified_at", "escalations", "state", "acknowledged_at",
               "acknowledged_by", "action", "note", "minutes_to_acknowledge", "evidence")


def alert_items(db: Session, key: ApiKey, state: str | None) -> Iterator[dict[str, Any]]:
    first_sent = (select(AlertNotification.alert_id, func.min(AlertNotification.sent_at).label("at"))
                  .where(AlertNotification.status == NotificationStatus.SENT)
                  .group_by(AlertNotification.alert_id).subquery())
    q = (select(Alert, Patient.subject_id, Site.code, Occurrence.visit_code, first_sent.c.at)
         .join(Patient, Patient.id == Alert.patient_id).join(Site, Site.id == Alert.site_id)
         .join(Occurrence, Occurrence.id == Alert.occurrence_id)
         .outerjoin(first_sent, first_sent.c.alert_id == Alert.id)
         .where(Alert.study_id == key.study_id).order_by(Alert.id))
    if key.site_ids:
        q = q.where(Alert.site_id.in_(key.site_ids))
    if state:
        q = q.where(Alert.state == state)
    for a, subject, site, visit, notified in db.execute(q):
        yield {
            "id": a.id, "subject_id": subject, "site": site, "visit": visit, "rule": a.rule_code,
            "rule_label": a.rule_label, "severity": a.severity, "source": a.source, "raised_at": iso(a.raised_at),
            "first_notified_at": iso(notified) if notified else None, "escalations": a.escalation_level,
            "evidence": [{k: e.get(k) for k in ("ref", "value", "compared_with", "reference_visit",
                                                 "reference_value", "change") if k in e} for e in a.evidence],
            "state": a.state.value,
            "acknowledgement": None if a.acknowledged_at is None else {
                "at": iso(a.acknowledged_at), "by": a.acknowledged_by,
                "action": a.ack_action.value if a.ack_action else None, "note": a.ack_note,
                "minutes_to_acknowledge": minutes_between(a.raised_at, a.acknowledged_at)},
        }


def csv_row(item: dict[str, Any]) -> tuple[Any, ...]:
    ack = item["acknowledgement"] or {}
    evidence = "; ".join(f"{e['ref']}={e['value']}" + (f" (change {e['change']} from {e['reference_visit']})"
                                                      if e.get("change") is not None else
                                                      " (no reference to compare with)" if e.get("compared_with")
                                                      else "") for e in item["evidence"])
    return (item["id"], item["subject_id"], item["site"], item["visit"], item["rule"], item["rule_label"]["en"],
            item["rule_label"]["fr"], item["severity"], item["source"], item["raised_at"],
            item["first_notified_at"] or "", item["escalations"], item["state"], ack.get("at", ""),
            ack.get("by", ""), ack.get("action") or "", ack.get("note") or "", ack.get("minutes_to_acknowledge", ""),
            evidence)
