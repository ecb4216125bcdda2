"""JSON and problem+json responses: documented models rendered by pydantic's serializer,
other documents (health, problems) encoded with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from shared.errors import PaysysError

PROBLEM_TYPE_BASE = "https://paysys.dev/problems/"


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Model(Response):
    """A response model of `shared.resources.schemas`, as its schema documents it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        assert isinstance(content, BaseModel)
        return content.__pydantic_serializer__.to_json(content)


def problem_document(
    status: int, code: str, title: str, detail: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if extra:
        doc.update(extra)
    return doc


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        content=orjson.dumps(problem_document(status, code, title, detail, extra)),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def error_response(exc: PaysysError) -> Response:
    return problem(
        exc.status, exc.code, exc.title, exc.detail, extra=exc.extra(), headers=exc.headers
    )
