"""Events: see docs/API.md, "Events and webhooks"."""

from __future__ import annotations

from fastapi import APIRouter

from api.jsonbody import JsonRoute

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["events"])
