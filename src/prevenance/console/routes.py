"""Console and portal pages (HTML), mounted beside the API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
