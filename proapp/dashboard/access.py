"""Who sees what. An admin sees everything; a coordinator the sites of their scopes; a monitor a whole study,
read-only. Every query of the dashboard goes through ``Viewer.patients()``, so a patient outside the viewer's
scope is simply not found (404), never shown."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, true

from proapp.accounts.models import Role
from proapp.patients.models import Patient


@dataclass(frozen=True)
class Viewer:
    user_id: int
    email: str
    role: Role
    scopes: tuple[tuple[int, int | None], ...]     # (study id, site id or None for every site)
    language: str = "fr"

    @property
    def actor(self) -> str:
        return f"user:{self.email}"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_change(self) -> bool:
        """Monitors only look."""
        return self.role in (Role.ADMIN, Role.COORDINATOR)

    def patients(self) -> ColumnElement[bool]:
        """The SQL condition on ``Patient`` for the patients this viewer may see."""
        return self.sites_clause(Patient.study_id, Patient.site_id)

    def sites_clause(self, study_col, site_col) -> ColumnElement[bool]:
        if self.is_admin:
            return true()
        parts = [study_col == study if site is None else and_(study_col == study, site_col == site)
                 for study, site in self.scopes]
        return or_(*parts) if parts else false()

    def sees(self, study_id: int, site_id: int | None = None) -> bool:
        """Whether this viewer may see the study (``site_id`` None: any of its sites) or that site of it."""
        if self.is_admin:
            return True
        return any(s == study_id and (site is None or site_id is None or site == site_id)
                   for s, site in self.scopes)

    def sees_whole_study(self, study_id: int) -> bool:
        return self.is_admin or any(s == study_id and site is None for s, site in self.scopes)
