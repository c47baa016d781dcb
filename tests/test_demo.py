"""`tokenmeter demo` runs whichever installed sources offer demo data (``Source.demo_settings``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from helpers_host import cli_run

from tokenmeter import Cursor, PriceEntry, Source, UsageRecord, hookimpl, parse_time
from tokenmeter.plugin_manager import pm


class SampleSource(Source):
    """A third-party log source whose demo is one small log it copies into the demo folder."""

    id = "sample-log"
    provider = "sample"
    kind = "log"

    @dataclass
    class Settings:
        path: str = field(default="", metadata={"help": "The log."})

    @classmethod
    def demo_settings(cls, workdir: Path) -> dict[str, Any] | None:
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / "calls.log"
        log.write_text("2026-03-02T10:00:00Z sample-1 1000000 500000\n2026-03-03T10:00:00Z sample-1 2000 1000\n")
        return {"path": str(log)}

    def fetch(self, window: Any, cursor: Any) -> Any:
        for n, line in enumerate(Path(self.settings.path).read_text().splitlines()):
            when, model, inp, out = line.split()
            yield UsageRecord(key=str(n), start=parse_time(when), provider="sample", model=model, requests=1,
                              input_tokens=int(inp), output_tokens=int(out))
        yield Cursor({})


class NoDemoSource(SampleSource):
    id = "no-demo"

    @classmethod
    def demo_settings(cls, workdir: Path) -> dict[str, Any] | None:
        return None


class BrokenDemoSource(SampleSource):
    id = "broken-demo"

    @classmethod
    def demo_settings(cls, workdir: Path) -> dict[str, Any] | None:
        raise OSError("sample data missing from the wheel")


class SamplePlugin:
    @hookimpl
    def register_sources(self, register: Any) -> None:
        for cls in (SampleSource, NoDemoSource, BrokenDemoSource):
            register(cls)

    @hookimpl
    def register_prices(self, register: Any) -> None:
        register(PriceEntry(model="sample-1", provider="sample", currency="USD", input="1", output="4"))


def test_the_demo_runs_the_sources_that_offer_demo_data(tmp_path):
    pm.register(SamplePlugin(), name="sample-plugin")
    result = cli_run(["demo", "--keep", str(tmp_path / "demo"), "--json"])  # no other plugin loaded
    assert result.exit_code == 0, result.output
    assert "sample-log: 2 new records" in result.stderr
    assert "broken-demo: no demo: OSError: sample data missing from the wheel" in result.stderr
    assert "no-demo" not in result.stderr
    report = json.loads(result.stdout)
    [row] = report["rows"]
    assert (row["provider"], row["model"], row["requests"]) == ("sample", "sample-1", 2)
    # priced with the plugin's registered price: (1,002,000 x 1 + 501,000 x 4) per 1M
    assert (Decimal(row["cost"]), row["cost_kind"]) == (Decimal("3.006"), "estimated")
    assert (tmp_path / "demo" / "data" / "sample-log" / "calls.log").is_file()
    assert "prices sample-1" in result.stderr  # the next step names a model the demo has


def test_without_any_demo_data_the_demo_says_why():
    result = cli_run(["demo"])
    assert result.exit_code == 4
    assert "no installed source offers demo data" in result.stderr
