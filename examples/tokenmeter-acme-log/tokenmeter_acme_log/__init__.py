"""tokenmeter plugin for Acme: its client call log, and the prices to estimate what the calls cost.

The log has no cost column, so tokenmeter estimates each call from the prices registered here
(``register_prices``), at the price in force on the call's date.
"""

from tokenmeter import hookimpl

from .log import AcmeLogSource
from .prices import PRICES, REGIONS


@hookimpl
def register_sources(register):
    register(AcmeLogSource)


@hookimpl
def register_prices(register):
    for region in REGIONS:
        register(region)
    for price in PRICES:
        register(price)
