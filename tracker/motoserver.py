"""Serve moto's emulated AWS over HTTP, one request at a time.

Real DynamoDB applies each conditional write atomically; moto's threaded server can
interleave two of them. Serving requests one by one restores that guarantee, so the
send-once tests exercise our logic, not moto's races.
"""

from __future__ import annotations

import argparse
import os
import sys


def serve(host: str = "127.0.0.1", port: int = 5001) -> None:
    """Run the server until killed."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    os.environ.setdefault("MOTO_PORT", str(port))
    server = make_server(host, port, DomainDispatcherApplication(create_backend_app),
                         threaded=False, request_handler=MotoRequestHandler)
    print(f"moto listening on http://{host}:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
