"""Run the follow-up job once in an OS process of its own, with its own boto3 clients.

``python -m tests.jobprocess AT READY_FILE GO_FILE [SEND_RATE]``: builds the app, warms
its clients, touches READY_FILE, waits for GO_FILE (so two processes start together), runs
the job as if at AT and prints its counts as JSON. The environment points boto3 at moto.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(at: str, ready: Path, go: Path, send_rate: float = 0) -> None:
    from app import create_app
    from tracker import aws, followups
    from tracker.cli import parse_instant

    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "SEND_RATE": send_rate,
                      "MAIL_FROM": "tracker@example.com",
                      "BASE_URL": "https://tracker.example/dev"})
    postman = app.extensions["tracker"]
    postman.store.get("warm-up")  # connect before the start signal
    aws.client("sesv2", max_attempts=1)
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    with app.app_context():
        result = followups.run(postman, now=parse_instant(at))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]),
         float(sys.argv[4]) if len(sys.argv) > 4 else 0)
