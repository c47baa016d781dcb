from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import vcr
from tokenmeter import NeedsCredentials, ProviderAuthError
from tokenmeter.testing import collect, fake_context

from tokenmeter_csv_spend.credits import AcmeCreditsSource

FAKE_KEY = {"ACME_API_KEY": "test-key-not-real"}
replay = vcr.VCR(
    cassette_library_dir=str(Path(__file__).parent / "cassettes"),
    record_mode="none",  # never touch the network in tests
    filter_headers=["authorization"],  # a key must never be written to a cassette
)


def test_credits_from_a_recorded_answer():
    with replay.use_cassette("credits.yaml"):
        out = collect(AcmeCreditsSource, ctx=fake_context("acme-credits", env=FAKE_KEY))
    [snapshot] = out.snapshots
    assert (snapshot.name, snapshot.unit) == ("credits", "USD")
    assert (snapshot.used, snapshot.remaining, snapshot.total) == (Decimal("7.19"), Decimal("42.81"), Decimal("50.00"))


def test_a_rejected_key_says_so():
    def handler(request):
        assert request.headers["Authorization"] == "Bearer test-key-not-real"
        return httpx.Response(401, json={"error": {"message": "invalid api key"}})

    ctx = fake_context("acme-credits", env=FAKE_KEY, handler=handler)
    with pytest.raises(ProviderAuthError, match="HTTP 401 from api.acme.example: invalid api key"):
        collect(AcmeCreditsSource, ctx=ctx)


def test_no_key_is_needs_credentials():
    with pytest.raises(NeedsCredentials, match="set ACME_API_KEY"):
        collect(AcmeCreditsSource)
