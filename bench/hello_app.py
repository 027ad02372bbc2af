"""The baseline of ``bench_request_overhead.py``: bare Flask, one JSON route, nothing else."""

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/hello")
def hello() -> Response:
    return jsonify(status="ok")
