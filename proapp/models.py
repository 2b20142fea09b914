"""Every model, imported once so that the metadata (and Alembic) sees all tables."""

from proapp.accounts.models import AccountMail, AccountToken, Role, StaffSession, User, UserScope
from proapp.alerts.models import Alert, AlertNotification
from proapp.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from proapp.audit.restores import RestoreRecord
from proapp.export.models import Acknowledgement, ApiKey, ApiPull, PushDelivery
from proapp.jobs.models import WorkerHeartbeat
from proapp.patients.models import (
    Agreement,
    Occurrence,
    OccurrenceStatus,
    Patient,
    PatientContact,
    PatientEvent,
    PatientStatus,
)
from proapp.questionnaire.models import AccessLink, Answer, Correction, Response, ResponseStatus
from proapp.ratelimit import RateCounter
from proapp.remote.models import Conversation
from proapp.sms.models import SendSlot, SmsMessage, SmsStatus
from proapp.studies.models import ClosedLink, Site, Study, StudyClosure

__all__ = [
    "AccessLink",
    "AccountMail",
    "AccountToken",
    "Acknowledgement",
    "Agreement",
    "Alert",
    "AlertNotification",
    "Answer",
    "ApiKey",
    "ApiPull",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "ClosedLink",
    "Conversation",
    "Correction",
    "Occurrence",
    "OccurrenceStatus",
    "Patient",
    "PatientContact",
    "PatientEvent",
    "PatientStatus",
    "PushDelivery",
    "RateCounter",
    "Response",
    "ResponseStatus",
    "RestoreRecord",
    "Role",
    "SendSlot",
    "Site",
    "SmsMessage",
    "SmsStatus",
    "StaffSession",
    "Study",
    "StudyClosure",
    "User",
    "UserScope",
    "WorkerHeartbeat",
]
