"""The API's answers: an error answer as the right exception (with the API's message, secrets
removed, and the fix), and a success answer's JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from tokenmeter import ProviderAuthError, ProviderResponseError

from .settings import SOURCE_ID, Endpoint

if TYPE_CHECKING:
    from .credentials import Credentials

__all__ = ["PERMISSIONS", "error_detail", "raise_for", "read_json"]

PERMISSIONS = "modelarts:monitoring:get, modelarts:service:get and iam:projects:get"


def raise_for(response: Any, endpoint: Endpoint, creds: Credentials | None) -> NoReturn:
    """The error for an answer that is not a success, with the API's own message and the fix."""
    status = response.status_code
    detail = error_detail(response, creds)
    if status == 401:
        assert creds is not None
        expiry = " (temporary credentials expire)" if creds.token else ""
        raise ProviderAuthError(
            f"huawei-maas: signature rejected: check {creds.origin}{expiry} and the system clock "
            f"(requests are valid for 15 minutes){detail}",
            source=SOURCE_ID,
        )
    if status == 403:
        raise ProviderAuthError(
            f"huawei-maas: permission denied by {endpoint.host}{detail}; the IAM user needs "
            f"{PERMISSIONS} "
            "(e.g. policies 'ModelArts CommonOperations' and 'IAM ReadOnlyAccess')",
            source=SOURCE_ID,
        )
    hint = ""
    if status < 400:
        hint = "; it redirects (not followed): set endpoint/iam_endpoint in [sources.huawei-maas] to the API host"
    if status == 404:
        hint = "; check region, endpoint and project_id in [sources.huawei-maas]"
    raise ProviderResponseError(
        f"huawei-maas: HTTP {status} from {endpoint.host}{detail}{hint}", source=SOURCE_ID
    )


def error_detail(response: Any, creds: Credentials | None) -> str:
    """': <API message>' from a Huawei error body, secrets removed; '' when there is none."""
    text = ""
    try:
        data = json.loads(response.content)
    except ValueError:
        lines = response.text.strip().splitlines()
        text = lines[0] if lines else ""
    else:
        if isinstance(data, Mapping):
            err = data.get("error") if isinstance(data.get("error"), Mapping) else data
            message = next(
                (
                    err[k]
                    for k in ("error_msg", "message", "msg", "detail")
                    if isinstance(err.get(k), str)
                ),
                "",
            )
            code = next((err[k] for k in ("error_code", "code") if isinstance(err.get(k), str)), "")
            text = f"{message} ({code})" if message and code else message or code
    text = " ".join(text.split())[:200]
    for secret in creds.values if creds else ():
        text = text.replace(secret, "***")
    return f": {text}" if text else ""


def read_json(response: Any, endpoint: Endpoint) -> Any:
    """The answer's JSON, numbers as ``Decimal``; ``ProviderResponseError`` when it is not JSON."""
    try:
        # Decimal keeps the thousands exactly as sent (no float noise before ×1000).
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        raise ProviderResponseError(
            f"huawei-maas: {endpoint.host} answered HTTP {response.status_code} with something "
            "that is not JSON",
            source=SOURCE_ID,
        ) from None
