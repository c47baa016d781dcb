"""The ``[sources.huawei-maas]`` settings, validated: region, project, service and inference types,
endpoints (https, or http for loopback) and the time zone name sent to the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit

from tokenmeter import ConfigError, check_base_url

__all__ = [
    "ALLOWED_INFER_TYPES",
    "ALLOWED_SERVICE_TYPES",
    "PROJECT_ID",
    "SOURCE_ID",
    "Config",
    "Endpoint",
    "parse_endpoint",
    "timezone_name",
    "validate",
]

SOURCE_ID = "huawei-maas"
ALLOWED_SERVICE_TYPES = {1: "my-service", 2: "preset", 4: "custom-endpoint"}
ALLOWED_INFER_TYPES = ("real_time", "batch")
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host and an optional path prefix (a proxy)."""

    scheme: str
    netloc: str
    base_path: str  # "" or a proxy prefix without the trailing slash

    @property
    def host(self) -> str:
        return self.netloc


def parse_endpoint(value: str, key: str) -> Endpoint:
    """Validate an endpoint setting: https, or http only for loopback hosts."""
    url = urlsplit(check_base_url(value, f"[sources.huawei-maas] {key}"))
    return Endpoint(url.scheme, url.netloc, url.path.rstrip("/"))


def timezone_name(tz: tzinfo) -> str:
    """An IANA name for ``tz`` to send as the API's ``timezone`` field."""
    key = getattr(tz, "key", None)  # zoneinfo.ZoneInfo
    if isinstance(key, str) and key:
        return key
    offset = tz.utcoffset(None)
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        if minutes == 0:
            return "UTC"
        if minutes % 60 == 0:
            return f"Etc/GMT{-minutes // 60:+d}"  # POSIX sign: Etc/GMT-8 is UTC+8
    return tz.tzname(None) or "UTC"


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return [value]
    raise ConfigError(f"[sources.huawei-maas] {key} must be a list, got {value!r}")


@dataclass(frozen=True)
class Config:
    """Validated settings."""

    region: str
    project_id: str | None
    service_types: tuple[int, ...]
    infer_types: tuple[str, ...]
    endpoint: Endpoint
    iam_endpoint: Endpoint
    credentials_file: str | None


def validate(settings: Any) -> Config:
    """Check the settings and fill the defaults; raises ``ConfigError`` with the fix."""
    region = str(settings.region or "").strip()
    if not REGION.match(region):
        raise ConfigError(
            f"[sources.huawei-maas] region = {settings.region!r} is not a region id like "
            "'cn-southwest-2' or 'ap-southeast-1'"
        )
    project_id = settings.project_id.strip() if isinstance(settings.project_id, str) else settings.project_id
    if project_id is not None and (not isinstance(project_id, str) or not PROJECT_ID.match(project_id)):
        raise ConfigError(
            "[sources.huawei-maas] project_id must be the project id (32 hex characters) or unset"
        )
    service_types: list[int] = []
    for item in _as_list(settings.service_types, "service_types"):
        number = item if isinstance(item, int) and not isinstance(item, bool) else None
        if isinstance(item, str) and item.strip().isdigit():
            number = int(item)
        if number == 3:
            raise ConfigError(
                "[sources.huawei-maas] service_types: 3 is rejected by the API ('service_type must be one "
                "of [1 2 4]'); use 4 for custom endpoints"
            )
        if number not in ALLOWED_SERVICE_TYPES:
            raise ConfigError(
                f"[sources.huawei-maas] service_types: {item!r} is not one of 1 (my services), "
                "2 (preset services), 4 (custom endpoints)"
            )
        if number not in service_types:
            service_types.append(number)
    infer_types: list[str] = []
    for item in _as_list(settings.infer_types, "infer_types"):
        if item not in ALLOWED_INFER_TYPES:
            raise ConfigError(
                f"[sources.huawei-maas] infer_types: {item!r} is not one of 'real_time', 'batch'"
            )
        if item not in infer_types:
            infer_types.append(item)
    if not service_types or not infer_types:
        raise ConfigError("[sources.huawei-maas] service_types and infer_types must not be empty")
    endpoint = parse_endpoint(
        settings.endpoint or f"https://modelarts.{region}.myhuaweicloud.com", "endpoint"
    )
    iam = parse_endpoint(settings.iam_endpoint or f"https://iam.{region}.myhuaweicloud.com", "iam_endpoint")
    cred_file = settings.credentials_file
    if cred_file is not None and (not isinstance(cred_file, str) or not cred_file.strip()):
        raise ConfigError("[sources.huawei-maas] credentials_file must be a file path")
    return Config(
        region,
        project_id,
        tuple(service_types),
        tuple(infer_types),
        endpoint,
        iam,
        cred_file.strip() if cred_file else None,
    )
