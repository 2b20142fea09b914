"""WSGI entry point for gunicorn (``gunicorn wsgi:app``) and ``flask --app wsgi``.

No scheduler starts here: SMS are sent by the separate ``proapp worker`` process.
"""

from proapp import create_app

app = create_app()
