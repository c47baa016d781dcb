"""AK/SK request signing (SDK-HMAC-SHA256) through huaweicloudsdkcore's ``Signer``.

The signer canonicalises the path and query and signs every header present, so the caller must
send exactly ``SignedRequest.url``, ``headers`` and ``body``. ``X-Security-Token`` (temporary
credentials) is put in the headers *before* signing so that it is signed too.

``AkSkSigner`` does that to a request on every try: it is the ``auth`` the source passes to the
host's retry path, which runs it again before each retry, so no signature (valid 15 minutes) is
ever sent twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from tokenmeter import RequestSigner

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


class AkSkSigner(RequestSigner):
    """Sign each try of a request at ``utcnow()``, after ``before()`` (the source's pacing) ran."""

    def __init__(self, creds: Credentials, utcnow: Callable[[], datetime],
                 before: Callable[[], None] | None = None) -> None:
        self.creds = creds
        self.utcnow = utcnow
        self.before = before

    def sign(self, request: Any) -> None:
        if self.before is not None:
            self.before()  # pace first, so the signature's time is the time it is sent
        url = request.url
        netloc = url.netloc.decode("ascii")
        path, _, query = url.raw_path.decode("ascii").partition("?")
        signed = sign(request.method, url.scheme, netloc, path, self.creds, when=self.utcnow(),
                      query=parse_qsl(query, keep_blank_values=True), body=request.content)
        # send the path and query exactly as signed (the signer's canonical query order and quoting)
        request.url = url.copy_with(raw_path=signed.url.removeprefix(f"{url.scheme}://{netloc}").encode("ascii"))
        request.headers.update(signed.headers)
