"""AK/SK request signing (SDK-HMAC-SHA256) through huaweicloudsdkcore's ``Signer``.

The signer canonicalises the path and query and signs every header present, so the caller must
send exactly ``SignedRequest.url``, ``headers`` and ``body``. ``X-Security-Token`` (temporary
credentials) is put in the headers *before* signing so that it is signed too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .credentials import Credentials

DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class SignedRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes


@dataclass(frozen=True)
class _SignerCreds:
    # Signer reads only .ak and .sk; a plain holder avoids BasicCredentials' project/IAM logic.
    ak: str = field(repr=False)
    sk: str = field(repr=False)


def sign(
    method: str,
    scheme: str,
    netloc: str,
    path: str,
    creds: Credentials,
    *,
    when: datetime,
    query: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> SignedRequest:
    """Sign one request at time ``when`` (UTC) and return what to send, byte for byte."""
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    headers = {"Content-Type": "application/json", "X-Sdk-Date": when.strftime(DATE_FORMAT)}
    if creds.token:
        headers["X-Security-Token"] = creds.token
    request = SdkRequest(
        method=method,
        schema=scheme,
        host=netloc,
        resource_path=path,
        uri=path,
        query_params=list(query),
        header_params=headers,
        body=body,
    )
    signed = Signer(_SignerCreds(creds.ak, creds.sk)).sign(request)
    return SignedRequest(
        method=method,
        url=f"{scheme}://{netloc}{signed.uri}",
        headers=dict(signed.header_params),
        body=body,
    )
