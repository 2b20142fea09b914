"""The coordinators' dashboard: studies overview, patients, enrolment, the patient page and its actions."""
