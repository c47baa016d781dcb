"""Acme's prepaid credits, from its (fictional) billing API: one QuotaSnapshot per run.

GET {base_url}/v1/credits with "Authorization: Bearer <key>" answers
{"currency": "USD", "granted": "50.00", "used": "7.19", "expires_at": "2026-12-31T00:00:00Z"}
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from tokenmeter import ProviderResponseError, QuotaSnapshot, Source, raise_for_status, send


class AcmeCreditsSource(Source):
    """The balance of Acme's prepaid credits."""

    id = "acme-credits"
    provider = "acme"
    kind = "ledger"
    description = "Acme prepaid credits (API)"

    @dataclass
    class Settings:
        base_url: str = field(default="https://api.acme.example", metadata={"help": "Acme API base URL."})
        api_key_env: str = field(default="ACME_API_KEY", metadata={"help": "Env var holding the API key."})

    def available(self):
        if self.ctx.secret(self.settings.api_key_env) is None:
            return f"set {self.settings.api_key_env}"
        return None

    def fetch(self, window, cursor):
        key = self.ctx.require_secret(self.settings.api_key_env)
        request = self.ctx.http.build_request(
            "GET", f"{self.settings.base_url}/v1/credits", headers={"Authorization": f"Bearer {key}"}
        )
        response = send(self.ctx.http, request, source=self.id)
        raise_for_status(response, source=self.id)  # 401 -> ProviderAuthError, 429, 5xx ...
        try:
            data = response.json()
            granted, used = Decimal(data["granted"]), Decimal(data["used"])
            expires = datetime.fromisoformat(data["expires_at"])
            currency = data["currency"]
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise ProviderResponseError(f"{self.id}: unexpected answer from /v1/credits ({exc!r})") from None
        yield QuotaSnapshot(
            provider=self.provider,
            name="credits",
            unit=currency,
            used=used,
            total=granted,
            remaining=granted - used,
            resets_at=expires,
            observed_at=self.ctx.now(),
        )
