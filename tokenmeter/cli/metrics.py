"""`tokenmeter metrics`: Prometheus text on stdout, `--serve` for scrapes, `--otlp` push."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .. import service
from ..output import safe_text
from .common import Env, common_options, get_env, say

if TYPE_CHECKING:
    from ..metrics import Figures


def _figures(env: Env, tz: str | None, top: int, offline: bool) -> Figures:
    # log sources are read first, as before a report
    with env.open_store() as store:
        return service.metrics(store, env.config, env.now(), env.timezone(tz), top=top,
                               refresh="none" if offline else "logs", say=say)


@click.command(name="metrics")
@click.option("--serve", "listen", metavar="[HOST:]PORT",
              help="Serve the metrics at http://HOST:PORT/metrics (HOST defaults to 127.0.0.1).")
@click.option("--otlp", "otlp_url", metavar="URL",
              help="Push them to an OTLP/HTTP collector instead (e.g. http://localhost:4318); "
                   "needs pip install 'tokenmeter[otlp]'.")
@click.option("--top", type=click.IntRange(min=0), default=20, show_default=True, metavar="N",
              help="The N models with most tokens this month per provider; the rest as model=\"other\" (0: all).")
@click.option("--tz", metavar="ZONE", help="IANA time zone for today and month (default: config, else system).")
@click.option("--offline", is_flag=True, help="Read the database only; refresh nothing.")
@common_options
def metrics_cmd(listen: str | None, otlp_url: str | None, top: int, tz: str | None, offline: bool) -> None:
    """Cost, tokens, requests, budgets, quotas and source health as Prometheus metrics.

    Prints the text exposition (for node-exporter's textfile collector), serves it with --serve,
    or pushes the same figures over OTLP with --otlp. Every series is a gauge: bills get
    corrected after the fact. Log sources are read first, as before a report.

    \b
    Examples:
      tokenmeter metrics > /var/lib/node_exporter/textfile/tokenmeter.prom
      tokenmeter metrics --serve 127.0.0.1:9464
      tokenmeter metrics --otlp http://localhost:4318
    """
    from ..metrics import parse_listen, prometheus_text, serve

    env = get_env()
    _ = env.config, env.timezone(tz)  # a bad config or --tz fails now, not on the first scrape
    if listen and otlp_url:
        raise click.UsageError("--serve and --otlp: choose one (run --otlp from cron beside the server)")
    if otlp_url:
        from ..config import request_deadline
        from ..otlp import endpoint, push

        endpoint(otlp_url)
        sent = push(_figures(env, tz, top, offline), otlp_url, timeout=request_deadline(env.config))
        click.echo(f"tokenmeter: pushed {sent} metrics to {safe_text(otlp_url)}", err=True)
        return
    if not listen:
        click.echo(prometheus_text(_figures(env, tz, top, offline)), nl=False)
        return
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def ready(server: Any) -> None:
        h, p = server.server_address[:2]
        shown = f"[{h}]" if ":" in h else h
        click.echo(f"tokenmeter: serving http://{shown}:{p}/metrics (Ctrl-C stops)", err=True)

    serve(host, port, lambda: prometheus_text(_figures(env, tz, top, offline)), ready=ready)
