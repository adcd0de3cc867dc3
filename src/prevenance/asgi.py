"""The ASGI application uvicorn serves (settings from the environment, maintenance thread on).

Importing it checks ``PREVENANCE_SECRET_KEY`` first (``prevenance.secret_key``): this module cannot
see the address uvicorn binds, so a weak secret is accepted only when ``prevenance serve`` started
it on a loopback address; ``uvicorn prevenance.asgi:app`` run directly needs a real secret.
"""

from __future__ import annotations

import os
import sys

from prevenance.app import create_app
from prevenance.secret_key import SERVE_HOST_ENV, judge_server
from prevenance.settings import get_settings
from prevenance.stream.consumer import freeze_startup_heap

_verdict = judge_server(get_settings().secret_key, os.environ.get(SERVE_HOST_ENV))
if _verdict.refuse:
    print(_verdict.line, file=sys.stderr, flush=True)
    raise SystemExit(2)
# A warning was already printed by `prevenance serve`, once rather than once per worker.

app = create_app(background=True)
# Everything alive now (modules, mappers, compiled statements) lives as long as the process: out of
# the garbage collector's full passes, which otherwise stall every request in flight (see there).
freeze_startup_heap()
