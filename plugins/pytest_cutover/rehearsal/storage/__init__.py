"""A Supabase-Storage-compatible service for the rehearsal (the real server cannot be installed here).

It speaks the subset of the Storage HTTP API that the official ``storage3`` client uses (buckets;
object upload, download, list, info, remove; signed download and upload URLs), with the real server's routes, response
shapes and error bodies (read from github.com/supabase/storage: ``src/http/routes``,
``src/internal/errors``), and it authorises like the real server: it verifies the request's JWT
(HS256 with the stack's secret) and runs every metadata query in PostgreSQL as the JWT's role with
``request.jwt.claims`` set, so the RLS policies on ``storage.objects`` decide.  Object bytes live on
local disk.  Run it with ``python -m pytest_cutover.rehearsal.storage`` (see ``__main__``).
"""

from pytest_cutover.rehearsal.storage.server import create_app

__all__ = ["create_app"]
