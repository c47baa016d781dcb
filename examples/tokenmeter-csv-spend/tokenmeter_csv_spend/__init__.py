"""tokenmeter plugin for Acme: the daily spend export (CSV) and the prepaid credits (API)."""

from tokenmeter import hookimpl

from .credits import AcmeCreditsSource
from .spend import CsvSpendSource


@hookimpl
def register_sources(register):
    register(CsvSpendSource)
    register(AcmeCreditsSource)
