"""The baseline of cost per request: a bare Flask app that renders a page and does one put_item."""

from __future__ import annotations

import functools
import os
import uuid

from flask import Flask, redirect, render_template_string, request

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Baseline</title></head>
<body><h1>Baseline</h1>
<form method="post"><input name="email" type="email"><button>Send</button></form>
{% for n in range(3) %}<p>Paragraph {{ n }}</p>{% endfor %}
</body></html>"""


@functools.cache
def session():
    import boto3

    return boto3.session.Session()


@functools.cache
def _table():
    name = os.environ.get("TABLE_NAME", "esim-cancellations")
    return session().resource("dynamodb").Table(name)


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def page():
        return render_template_string(PAGE)

    @app.post("/")
    def submit():
        _table().put_item(Item={"pk": f"BASE#{uuid.uuid4().hex}",
                                "email": request.form.get("email", "")})
        return redirect("/", 303)

    return app
