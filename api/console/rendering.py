"""Templates and static files of the console, both shipped inside this package (see
`pyproject.toml`'s package data): nothing is fetched from anywhere else, and nothing needs
building.

The rules:

* Every value reaches HTML through Jinja's autoescaping; an undefined name in a template
  is an error, not an empty string.
* Money is shown from integer cents with two fraction digits, grouped by thousands; times
  in UTC, each in a `<time>` element with its RFC 3339 value.
* A static file's URL carries a digest of its content, so that it can be cached for good
  and still change with a release.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

HERE = Path(__file__).resolve().parent
NO_VALUE = "\N{EN DASH}"  # an empty cell that is not a zero


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for path in sorted((HERE / "static").iterdir()):
        if path.is_file():
            body = path.read_bytes()
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media_type.startswith("text/") or media_type.endswith(("javascript", "+xml")):
                media_type += "; charset=utf-8"
            assets[path.name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return assets


ASSETS = _load_assets()


def static_url(name: str) -> str:
    return f"/console/static/{name}?v={ASSETS[name].version}"


def money(cents: int | None) -> str:
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    units, frac = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{frac:02d}"


def signed_money(cents: int) -> str:
    return ("+" if cents > 0 else "") + money(cents)


def when(value: datetime | None) -> Markup:
    if value is None:
        return Markup("")
    utc = value.astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def seconds(value: float | None) -> str:
    """A duration, in the unit that reads best."""
    if value is None:
        return NO_VALUE
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def since(value: datetime | None) -> str:
    if value is None:
        return NO_VALUE
    return seconds(max(0.0, (datetime.now(UTC) - value).total_seconds()))


def pretty_json(text: str) -> str:
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False)


def short_id(value: object) -> str:
    """The last characters of an id, for narrow columns (the full id is its link's title
    and the page it leads to). Not the first: those of a UUIDv7 are its creation time,
    the same for every id of the same minute."""
    text = str(value)
    return "…" + text[-8:] if len(text) > 8 else text


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    money=money,
    signed_money=signed_money,
    when=when,
    seconds=seconds,
    since=since,
    pretty_json=pretty_json,
    short_id=short_id,
)
ENV.globals.update(static_url=static_url)


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)
