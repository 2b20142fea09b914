"""The plain implementation of a question page, to measure proapp against: Flask, Flask-WTF and SQLAlchemy Core
with nothing else. GET reads the stored answer (one row, ``?row=``) and renders a question-sized page with a
CSRF token; POST checks the token, upserts the answer, commits and redirects (post/redirect/get), as proapp's
autosave does without its checks, flow, navigation state and audit entry. The database is
``PLAIN_DATABASE_URL``."""

from __future__ import annotations

import os

from flask import Flask, redirect, render_template_string, request
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

PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Question 1 sur 6 · Douleur</title><link rel="stylesheet" href="/static/app.css"></head>
<body><a class="skip" href="#main">Aller au contenu</a>
<header class="top"><span class="brand">proapp</span>
<form class="lang" method="post" action="/language"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<button name="lang" value="fr" aria-current="true">FR</button><button name="lang" value="en">EN</button></form></header>
<main id="main"><p class="progress">Question 1 sur 6</p><progress max="6" value="1">1 / 6</progress>
<form method="post" action="/q/PAIN_VAS.PAIN_VAS" novalidate>
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<fieldset><legend><h1>Quelle a été l'intensité de votre douleur au cours des dernières 24 heures&nbsp;?</h1></legend>
<p class="hint">0 = pas de douleur, 100 = la pire douleur imaginable</p>
<label for="PAIN_VAS">Votre réponse, de 0 à 100</label>
<input id="PAIN_VAS" name="PAIN_VAS" type="number" inputmode="numeric" min="0" max="100" value="{{ value or '' }}">
</fieldset><div class="actions"><button class="button primary" type="submit">Suivant</button></div></form>
</main><footer class="foot"><a href="/q/sms">SMS de rappel</a></footer>
<script src="/static/vas.js" defer></script></body></html>"""


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
    return render_template_string(PAGE, value=value)
