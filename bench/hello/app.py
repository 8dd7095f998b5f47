"""The baseline of the packaged cold start: hello world in Flask, packaged as the tracker is."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "<!doctype html><title>Hello</title><p>Hello, world.</p>"
