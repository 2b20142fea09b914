"""A bare Flask hello-world: the baseline the request-rate benchmark compares proapp with."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
