"""The plain implementation of a question page, to measure proapp against: Flask, Flask-WTF and SQLAlchemy Core
with nothing else. GET reads the stored answer (one row, ``?row=``) and renders a question-sized page with a
CSRF token from a template file (``templates/plain_question.html``, which Jinja compiles once per process, as any
Flask app renders its pages); POST checks the token, upserts the answer, commits and redirects
(post/redirect/get), as proapp's autosave does without its checks, flow, navigation state and audit entry.
The database is ``PLAIN_DATABASE_URL``."""

from __future__ import annotations

import os

from flask import Flask, redirect, render_template, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

app = Flask(__name__)
app.config["SECRET_KEY"] = "plain-benchmark-" + "x" * 32
CSRFProtect(app)
engine = create_engine(os.environ["PLAIN_DATABASE_URL"], pool_pre_ping=True)
metadata = MetaData()
answers = Table("plain_answer", metadata, Column("id", Integer, primary_key=True), Column("value", String(10)))
# The table is made by the benchmark before the workers start (tests/benchmarks/bench_rps.py).
if engine.dialect.name == "postgresql":
    from sqlalchemy.dialects.postgresql import insert
else:
    from sqlalchemy.dialects.sqlite import insert


@app.route("/q/<key>", methods=["GET", "POST"])
def question(key: str):
    row = int(request.args.get("row", "1"))      # each client its own row, as each patient has their own answer
    if request.method == "POST":
        value = request.form.get("PAIN_VAS", "")
        stmt = insert(answers).values(id=row, value=value)
        with engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=[answers.c.id], set_={"value": value}))
        return redirect(f"/q/{key}?row={row}", code=303)
    with engine.connect() as conn:
        value = conn.execute(select(answers.c.value).where(answers.c.id == row)).scalar()
    return render_template("plain_question.html", value=value)
