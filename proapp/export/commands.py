"""Commands of the export API: its keys."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from proapp import db, runtime
from proapp.cli import fail
from proapp.export.keys import KeyError_, create_key, revoke_key
from proapp.export.models import ApiKey
from proapp.studies.models import Study


@click.group("api-key", cls=AppGroup)
def api_key_group() -> None:
    """Keys of the export API (one study each)."""


@api_key_group.command("create")
@click.option("--study", required=True)
@click.option("--name", required=True, help="Who uses it, e.g. 'EDC nightly import'.")
@click.option("--site", multiple=True, help="Restrict to a site (repeat for several); none: every site.")
@click.option("--by", "by", default="cli", help="Who creates it (recorded).")
def api_key_create_cmd(study: str, name: str, site: tuple[str, ...], by: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    try:
        with db.transaction() as s:
            row, key = create_key(s, study_code=study, name=name, now=runtime.now(), created_by=by,
                                  site_codes=site)
    except KeyError_ as exc:
        fail(str(exc))
    click.echo(f"key pk_{row.prefix} for {study}{' sites ' + ','.join(site) if site else ''} ({name}); "
               "it is shown only now:")
    click.echo(key)


@api_key_group.command("revoke")
@click.argument("prefix")
def api_key_revoke_cmd(prefix: str) -> None:
    """Revoke a key (give its pk_... prefix); requests with it get 401 at once."""
    try:
        with db.transaction() as s:
            row = revoke_key(s, prefix, runtime.now())
    except KeyError_ as exc:
        fail(str(exc))
    click.echo(f"key pk_{row.prefix} revoked")


@api_key_group.command("list")
def api_key_list_cmd() -> None:
    """Every key: prefix, study, name, created, last used, revoked."""
    s = db.session()
    for key, code in s.execute(select(ApiKey, Study.code).join(Study, Study.id == ApiKey.study_id)
                               .order_by(ApiKey.id)):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "live"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}Z" if key.last_used_at else "never"
        click.echo(f"pk_{key.prefix}  {code}  {key.name}  created {key.created_at:%Y-%m-%d} by {key.created_by}  "
                   f"last used {used}  {state}")
