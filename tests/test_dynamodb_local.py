"""The DynamoDB Local the tests start listens on this machine's loopback address only."""

from __future__ import annotations

import shutil
import socket

import pytest


def outward_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.skipif(not shutil.which("javac"),
                    reason="without a JDK it listens on every interface (said on stderr)")
def test_dynamodb_local_answers_on_loopback_and_not_on_the_network(dynamodb_local_endpoint):
    port = int(dynamodb_local_endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # reachable here
    outward = outward_address()
    if outward is None:
        pytest.skip("no network address to try")
    with socket.socket() as s:
        s.settimeout(5)
        assert s.connect_ex((outward, port)) != 0
