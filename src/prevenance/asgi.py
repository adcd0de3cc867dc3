"""The ASGI application uvicorn serves (settings from the environment, maintenance thread on)."""

from __future__ import annotations

from prevenance.app import create_app

app = create_app(background=True)
