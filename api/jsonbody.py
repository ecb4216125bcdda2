"""Request bodies parsed without floats.

FastAPI reads JSON with the standard parser, which turns `10.005` into a float and would
let `1e3`, `NaN` or `Infinity` through. Routes of `JsonRoute` read numbers as
`JsonNumber` (their literal text) instead, refuse NaN, Infinity and duplicate member
names, and turn any parse
failure (malformed, too deeply nested, not UTF-8, an integer of thousands of digits) into
the JSON decode error that FastAPI answers with 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from shared.errors import FieldError, ValidationFailed
from shared.money import JsonNumber


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"amount": "1.00", "amount": "100.00"} is ambiguous; for money, refuse it.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member names in a JSON object")
    return obj


def loads(body: bytes) -> Any:
    try:
        return json.loads(
            body, parse_float=JsonNumber, parse_constant=_refuse_constant, object_pairs_hook=_object
        )
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None
    except ValueError as exc:  # NaN/Infinity, bad UTF-8, an int too long to convert
        raise json.JSONDecodeError(str(exc), "", 0) from None


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class JsonRoute(APIRoute):
    """A route that reads JSON bodies as above and refuses query parameters it does not
    declare: `?limt=10` silently ignored is a bug report waiting to happen."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = _query_names(self.dependant)

        async def route_handler(request: Request) -> Response:
            unknown = [name for name in request.query_params if name not in allowed]
            if unknown:
                raise ValidationFailed(
                    [
                        FieldError(["query", name[:100]], "unknown query parameter")
                        for name in unknown[:20]
                    ]
                )
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return route_handler
