"""``python -m pytest_cutover.rehearsal.storage --port N --data-dir D [--certfile F --keyfile K]``.

Secrets come from the environment, never from argv (argv is visible to every user in ``ps``):
``STORAGE_DATABASE_URL`` (a role that may SET ROLE to anon/authenticated/service_role) and
``STORAGE_JWT_SECRET`` (the HS256 secret the stack signs its JWTs with).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_cutover.rehearsal.storage")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--certfile", type=Path)
    parser.add_argument("--keyfile", type=Path)
    args = parser.parse_args(argv)
    dsn, secret = os.environ.get("STORAGE_DATABASE_URL"), os.environ.get("STORAGE_JWT_SECRET")
    if not dsn or not secret:
        print("storage: STORAGE_DATABASE_URL and STORAGE_JWT_SECRET must be set in the environment", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    import uvicorn

    from pytest_cutover.rehearsal.storage.server import create_app

    app = create_app(dsn=dsn, jwt_secret=secret, data_dir=args.data_dir)
    tls = {"ssl_certfile": str(args.certfile), "ssl_keyfile": str(args.keyfile)} if args.certfile else {}
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, **tls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
