#!/usr/bin/env python3
"""Regenerate the built-in plugins' price tables (maintainer script).

``plugins/alibaba_prices/prices.json`` (regions ``intl`` and ``cn``, registered by the
``alibaba-prices`` plugin) and ``plugins/huawei_maas/prices.json`` (region ``huawei-maas``, registered
by ``huawei-maas``). Entries use ``tokenmeter.PriceEntry`` field names (``effective``,
``reasoning``) plus ``region`` (which of the plugin's price regions) and ``basis`` (how the date
was established).

Not run by the tests and never at runtime. It needs only PyPI:

    python tools/update_prices.py                         # pip download model-prices, write the table
    python tools/update_prices.py --model-prices-wheel /tmp/x/model_prices-0.0.5-py3-none-any.whl
    python tools/update_prices.py --litellm-wheel /tmp/ll/litellm-1.110.2-....whl   # also cross-check
    python tools/update_prices.py --check                 # compare with the committed files, write nothing

Where the numbers come from (each entry also carries its own ``source`` URL):

* ``intl`` (Alibaba Cloud Model Studio international / Singapore, USD): generated from the
  ``prices["alibaba"]`` histories in model-prices' bundled ``snapshot.json`` (MIT; data from models.dev,
  MIT). The wheel is downloaded with ``pip download --no-deps`` and read as a zip, never installed.
* ``cn`` (China mainland / Beijing, CNY) and ``huawei-maas`` (Huawei Cloud MaaS, CN-Hong Kong, USD):
  hand-curated below in ``CURATED`` with their sources.
* Optional cross-check: LiteLLM's ``model_prices_and_context_window_backup.json`` read out of a
  downloaded wheel (never installed; never use litellm 1.82.7/1.82.8, which shipped a credential
  stealer). Differences are printed; ``--strict`` turns them into a failure.

How model-prices intervals become entries (see ``convert_model``):

1. The standard and thinking histories are combined at every date either changes; the thinking
   output rate becomes ``thinking_output`` (per tier where the thinking history has tiers).
2. model-prices prices usage before a model's first dated interval at an undated "first record"
   interval. When that interval's own ``valid_from`` is not earlier than the first dated interval, it
   covers no real time and is dropped (e.g. qwen3-coder-plus: a flat $1/$5 record and the documented
   tiers both start 2025-07-29T14:21Z, so there was never a flat period to bundle).
3. Consecutive intervals with the same input/output/thinking prices whose only difference is that the
   later one *adds* detail (long-context tiers, cache prices) are merged: the detail was first recorded
   then, it is not a price change (model-prices adds Alibaba's context-cache rule from 2026-10-09 to
   models that had it long before). The merged entry starts at the earlier date and says so in ``note``.
   This is an inference; a real price change (different input/output numbers) is always kept.
4. Timestamps become UTC dates: a change at 2026-08-16T16:00Z applies to the whole of 2026-08-16.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "plugins" / "alibaba_prices" / "prices.json"
HUAWEI_OUT = ROOT / "plugins" / "huawei_maas" / "prices.json"
HUAWEI_REGIONS = ("huawei-maas",)
CONTRACT_KEYS = {"valid_from": "effective", "thinking_output": "reasoning"}  # -> tokenmeter.PriceEntry names
MP_VERSION = "0.0.5"
INTL_SOURCE = "https://www.alibabacloud.com/help/en/model-studio/model-pricing"
CN_SOURCE = "https://help.aliyun.com/zh/model-studio/model-pricing"
CN_CODER_SOURCE = "https://help.aliyun.com/zh/model-studio/user-guide/qwen-coder"
HUAWEI_SOURCE = "https://support.huaweicloud.com/intl/en-us/price-modelarts/price-modelarts-0047.html"
CN_NOTE = (
    "CNY per 1M tokens. Values: models.dev alibaba-cn @735cde79 (converted to USD at 0.1435 USD/CNY "
    "there; converted back and rounded to the listed yuan price). Cache read = 20% of input (implicit "
    "cache), 10% where only explicit cache exists; cache write = 125% of input (explicit cache), per "
    "help.aliyun.com/zh/model-studio/context-cache. Earliest attested date; applied to earlier dates too."
)

# "-latest" ids are aliases of the base model (same price on the price pages and in LiteLLM, except
# that LiteLLM 1.110.2 maps qwen-max-latest to qwen3.8-max; not adopted, no dated source for it).
LATEST_ALIASES = {
    "qwen-plus": ["qwen-plus-latest"],
    "qwen-max": ["qwen-max-latest"],
    "qwen-turbo": ["qwen-turbo-latest"],
}


def _tiers(*rows: tuple) -> list[dict[str, Any]]:
    keys = ("above", "input", "output", "cache_read", "cache_write", "thinking_output")
    return [{k: v for k, v in zip(keys, row, strict=False) if v is not None} for row in rows]


# Hand-curated entries: China mainland (CNY) and Huawei Cloud MaaS.
CURATED: list[dict[str, Any]] = [
    # --- China mainland (Beijing), CNY per 1M tokens -------------------------------------------
    {"model": "qwen3-coder-plus", "region": "cn", "currency": "CNY", "valid_from": "2026-09-10",
     "input": "4", "output": "16", "cache_read": "0.8", "cache_write": "5",
     "tiers": _tiers((32000, "6", "24", "1.2", "7.5"), (128000, "10", "40", "2", "12.5"),
                     (256000, "20", "200", "4", "25")),
     "aliases": ["qwen3-coder-plus-2025-07-22", "qwen3-coder-plus-2025-09-23"],
     "source": CN_CODER_SOURCE, "basis": "documented (price page; date: models.dev PR #6723)"},
    {"model": "qwen3-coder-flash", "region": "cn", "currency": "CNY", "valid_from": "2026-09-10",
     "input": "1", "output": "4", "cache_read": "0.2", "cache_write": "1.25",
     "tiers": _tiers((32000, "1.5", "6", "0.3", "1.875"), (128000, "2.5", "10", "0.5", "3.125"),
                     (256000, "5", "25", "1", "6.25")),
     "aliases": ["qwen3-coder-flash-2025-07-28"],
     "source": CN_CODER_SOURCE, "basis": "documented (price page; date: models.dev PR #6723)"},
    {"model": "qwen-plus", "region": "cn", "currency": "CNY", "valid_from": "2026-08-18",
     "input": "0.8", "output": "2", "cache_read": "0.16", "cache_write": "1", "thinking_output": "8",
     "tiers": _tiers((128000, "2.4", "20", "0.48", "3", "24"), (256000, "4.8", "48", "0.96", "6", "64")),
     "aliases": ["qwen-plus-latest"], "source": CN_SOURCE, "basis": "models.dev alibaba-cn"},
    {"model": "qwen-max", "region": "cn", "currency": "CNY", "valid_from": "2026-08-18",
     "input": "2.4", "output": "9.6", "cache_read": "0.48",
     "aliases": ["qwen-max-latest"], "source": CN_SOURCE, "basis": "models.dev alibaba-cn"},
    {"model": "qwen-turbo", "region": "cn", "currency": "CNY", "valid_from": "2026-08-18",
     "input": "0.3", "output": "0.6", "cache_read": "0.06", "thinking_output": "3",
     "aliases": ["qwen-turbo-latest"], "source": CN_SOURCE, "basis": "models.dev alibaba-cn"},
    {"model": "qwen-flash", "region": "cn", "currency": "CNY", "valid_from": "2026-08-18",
     "input": "0.15", "output": "1.5", "cache_read": "0.03", "cache_write": "0.1875",
     "tiers": _tiers((128000, "0.6", "6", "0.12", "0.75"), (256000, "1.2", "12", "0.24", "1.5")),
     "aliases": ["qwen-flash-2025-07-28"], "source": CN_SOURCE, "basis": "models.dev alibaba-cn"},
    {"model": "qwq-plus", "region": "cn", "currency": "CNY", "valid_from": "2026-08-18",
     "input": "1.6", "output": "4", "source": CN_SOURCE, "basis": "models.dev alibaba-cn"},
    {"model": "qwen3-max", "region": "cn", "currency": "CNY", "valid_from": "2026-09-10",
     "input": "2.5", "output": "10", "cache_read": "0.5", "cache_write": "3.125",
     "tiers": _tiers((32000, "4", "16", "0.8", "5"), (128000, "7", "28", "1.4", "8.75")),
     "source": CN_SOURCE, "basis": "models.dev alibaba-cn (after PR #6723)"},
    {"model": "qwen3.5-plus", "region": "cn", "currency": "CNY", "valid_from": "2026-09-10",
     "input": "0.8", "output": "4.8", "cache_read": "0.08", "cache_write": "1",
     "tiers": _tiers((128000, "2", "12", "0.2", "2.5"), (256000, "4", "24", "0.4", "5")),
     "source": CN_SOURCE, "basis": "models.dev alibaba-cn (after PR #6723)",
     "note": "models.dev lists one reasoning price for all tiers; not bundled (thinking billed as output)"},
    {"model": "qwen3-vl-plus", "region": "cn", "currency": "CNY", "valid_from": "2026-08-18",
     "input": "1", "output": "10", "cache_read": "0.2", "cache_write": "1.25",
     "tiers": _tiers((32000, "1.5", "15", "0.3", "1.875"), (128000, "3", "30", "0.6", "3.75")),
     "source": CN_SOURCE, "basis": "models.dev alibaba-cn"},
    # --- Huawei Cloud MaaS (international site, CN-Hong Kong), USD; the page prices per 1K tokens --
    {"model": "DeepSeek-V3.1", "region": "huawei-maas", "currency": "USD", "valid_from": "2025-09-29",
     "input": "0.539", "output": "1.617", "source": HUAWEI_SOURCE,
     "basis": "documented (page versions 2025-09-29 and 2025-10-14; USD 0.000539/0.001617 per 1K)"},
    {"model": "Qwen3-32B", "region": "huawei-maas", "currency": "USD", "valid_from": "2025-09-29",
     "input": "0.27", "output": "1.078", "thinking_output": "2.695", "source": HUAWEI_SOURCE,
     "basis": "documented (page versions 2025-09-29 and 2025-10-14; USD per 1K: 0.000270 in, "
              "0.001078 out, 0.002695 out in reasoning mode)"},
]
for _entry in CURATED:
    if _entry["region"] == "cn":
        _entry.setdefault("note", CN_NOTE)


def dec(x: float | int | str) -> str:
    """A float from JSON as the shortest exact decimal string (0.20000000000000004 -> '0.2')."""
    d = Decimal(repr(round(float(x), 9))).normalize()
    return format(d, "f")


def fetch_wheel(package: str, version: str, dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), f"{package}=={version}"],
        check=True,
    )
    return next(dest.glob(f"{package.replace('-', '_')}-{version}-*.whl"))


def read_from_wheel(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(suffix))
        return zf.read(name).decode("utf-8")


def read_json_from_wheel(wheel: Path, suffix: str) -> dict[str, Any]:
    return json.loads(read_from_wheel(wheel, suffix))


def _in_force(intervals: list[dict[str, Any]], t: str | None) -> dict[str, Any] | None:
    """model-prices semantics: the last interval starting at or before t; undated = before all."""
    cur = None
    for iv in intervals:
        if iv["start"] is None or (t is not None and iv["start"] <= t):
            cur = iv
    return cur


def _rates_to_entry(std: dict[str, Any], think: dict[str, Any] | None) -> dict[str, Any]:
    e: dict[str, Any] = {"input": dec(std["input"]), "output": dec(std["output"])}
    for k in ("cache_read", "cache_write"):
        if std.get(k) is not None:
            e[k] = dec(std[k])
    think_tiers = {}
    if think is not None:
        if dec(think["input"]) != e["input"]:
            print(f"  warning: thinking input {think['input']} != standard {std['input']}", file=sys.stderr)
        if dec(think["output"]) != e["output"]:
            e["thinking_output"] = dec(think["output"])
        think_tiers = {t["above"]: t for t in think.get("tiers", [])}
    tiers = []
    for t in std.get("tiers", []):
        row = {"above": int(t["above"]), "input": dec(t["input"]), "output": dec(t["output"])}
        for k in ("cache_read", "cache_write"):
            if t.get(k) is not None:
                row[k] = dec(t[k])
        tt = think_tiers.get(t["above"])
        if tt is not None and dec(tt["output"]) != row["output"]:
            row["thinking_output"] = dec(tt["output"])
        tiers.append(row)
    if tiers:
        e["tiers"] = tiers
    return e


def _core(e: dict[str, Any]) -> tuple:
    tiers = tuple((t["above"], t["input"], t["output"], t.get("thinking_output")) for t in e.get("tiers", []))
    return (e["input"], e["output"], e.get("thinking_output"), tiers)


def _adds_detail_only(prev: dict[str, Any], nxt: dict[str, Any]) -> bool:
    """True when nxt has the same prices as prev and only adds tiers or cache prices."""
    if (prev["input"], prev["output"], prev.get("thinking_output")) != (
        nxt["input"], nxt["output"], nxt.get("thinking_output")
    ):
        return False
    if prev.get("tiers") and _core(prev)[3] != _core(nxt)[3]:
        return False
    for k in ("cache_read", "cache_write"):
        if prev.get(k) is not None and prev.get(k) != nxt.get(k):
            return False
    return True


def convert_model(model: str, modes: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    std_ivs = modes["standard"]
    think_ivs = modes.get("thinking", [])
    starts = sorted({iv["start"] for iv in std_ivs + think_ivs if iv["start"] is not None})
    points: list[str | None] = [None, *starts]
    raw: list[dict[str, Any]] = []
    for t in points:
        std = _in_force(std_ivs, t)
        if std is None:
            continue
        think = _in_force(think_ivs, t) if think_ivs else None
        e = _rates_to_entry(std["rates"], think["rates"] if think else None)
        when = t if t is not None else std["rates"]["valid_from"]
        e.update(valid_from=when[:10], source=std["rates"]["source"], basis=std["rates"]["valid_from_basis"])
        if t is None and starts and when[:10] >= starts[0][:10]:
            continue  # undated first record covering no real time (rule 2)
        raw.append(e)
    merged: list[dict[str, Any]] = []
    for e in raw:
        if merged and merged[-1]["valid_from"] == e["valid_from"]:
            merged[-1] = e  # same UTC day: the later price is the day's price
            continue
        if merged and _core(merged[-1]) == _core(e) and not _adds_detail_only(merged[-1], e):
            # same prices, different cache numbers only: keep the later numbers from the later date
            merged.append(e)
            continue
        if merged and _adds_detail_only(merged[-1], e):
            first = merged[-1]
            added = dict(first.get("_added", {}))
            for k in ("tiers", "cache_read", "cache_write"):
                if e.get(k) is not None and first.get(k) is None:
                    added[k] = e["valid_from"]
            e = dict(e, valid_from=first["valid_from"], basis=first["basis"], _added=added)
            if added:
                when = ", ".join(f"{k} first recorded {d}" for k, d in added.items())
                e["note"] = f"{when}; same prices, applied from the start of this price period (inference)"
            merged[-1] = e
            continue
        merged.append(e)
    for e in merged:
        e["model"], e["region"], e["currency"] = model, "intl", "USD"
    return merged


def build(mp_snapshot: dict[str, Any], as_of: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    alibaba = mp_snapshot["prices"]["alibaba"]
    for model in sorted(alibaba):
        if model.endswith("-latest"):
            continue  # bundled as aliases of the base model (LATEST_ALIASES)
        for e in convert_model(model, alibaba[model]):
            if model in LATEST_ALIASES:
                e["aliases"] = LATEST_ALIASES[model]
            entries.append(e)
    entries.extend(json.loads(json.dumps(CURATED)))
    order = ("model", "region", "currency", "valid_from", "input", "output", "cache_read", "cache_write",
             "thinking_output", "tiers", "aliases", "source", "basis", "note")
    entries = [{k: e[k] for k in order if k in e} for e in entries]
    entries.sort(key=lambda e: (e["region"], e["model"].lower(), e["valid_from"]))
    entries = [_contract_names(e) for e in entries]
    md = mp_snapshot["models_dev"]
    return {
        "schema": 1,
        "version": as_of,
        "basis": (f"tokenmeter-prices {as_of}: intl from model-prices {MP_VERSION} "
                  f"(snapshot {mp_snapshot['updated_at'][:10]}, models.dev {md['commit'][:8]}); "
                  f"cn curated (models.dev alibaba-cn 735cde79, help.aliyun.com)"),
        "units": "price per 1,000,000 tokens, in the entry's currency",
        "notices": [
            "model-prices (https://github.com/wakamex/model-prices), MIT License",
            "models.dev (https://github.com/sst/models.dev), MIT License",
        ],
        "entries": entries,
    }


def _contract_names(e: dict[str, Any]) -> dict[str, Any]:
    out = {CONTRACT_KEYS.get(k, k): v for k, v in e.items()}
    if "tiers" in out:
        out["tiers"] = [{CONTRACT_KEYS.get(k, k): v for k, v in t.items()} for t in out["tiers"]]
    return out


def split(table: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Alibaba table, the Huawei table): each plugin ships only its own prices."""
    huawei = {k: table[k] for k in ("schema", "version", "units")}
    huawei["basis"] = "huawei-maas curated (price-modelarts-0047, 2025-10-14)"
    huawei["entries"] = [e for e in table["entries"] if e["region"] in HUAWEI_REGIONS]
    alibaba = dict(table, entries=[e for e in table["entries"] if e["region"] not in HUAWEI_REGIONS])
    return alibaba, huawei


def cross_check(table: dict[str, Any], litellm: dict[str, Any], as_of: str) -> list[str]:
    """Compare today's intl prices with LiteLLM's ``dashscope/<model>`` (USD per token)."""
    problems = []
    latest: dict[str, dict[str, Any]] = {}
    for e in table["entries"]:
        if e["region"] == "intl" and e["effective"] <= as_of:
            latest[e["model"]] = e
    per_m = Decimal(1_000_000)
    for model, e in sorted(latest.items()):
        ll = litellm.get(f"dashscope/{model}")
        if not ll or "alias_of" in ll:
            continue
        if "tiered_pricing" in ll:
            ranges = sorted(ll["tiered_pricing"], key=lambda t: t["range"][0])
            got = [(int(t["range"][0]), dec(Decimal(repr(t["input_cost_per_token"])) * per_m),
                    dec(Decimal(repr(t["output_cost_per_token"])) * per_m)) for t in ranges]
        else:
            got = [(0, dec(Decimal(repr(ll.get("input_cost_per_token", 0))) * per_m),
                    dec(Decimal(repr(ll.get("output_cost_per_token", 0))) * per_m))]
        ours = [(0, e["input"], e["output"])]
        ours += [(t["above"], t["input"], t["output"]) for t in e.get("tiers", [])]
        if got != ours and got != ours[:1]:
            problems.append(f"{model}: ours {ours} vs litellm {got}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-prices-wheel", type=Path, help="use this wheel instead of pip download")
    p.add_argument("--litellm-wheel", type=Path, help="cross-check against this (downloaded) litellm wheel")
    p.add_argument("--as-of", default=datetime.now(UTC).date().isoformat(), help="version date (YYYY-MM-DD)")
    p.add_argument("--strict", action="store_true", help="fail when the LiteLLM cross-check differs")
    p.add_argument("--check", action="store_true", help="only report whether the committed file is current")
    p.add_argument("--out", type=Path, default=OUT, help="the Alibaba table")
    p.add_argument("--huawei-out", type=Path, default=HUAWEI_OUT, help="the Huawei table")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.model_prices_wheel or fetch_wheel("model-prices", MP_VERSION, Path(tmp))
        snapshot = read_json_from_wheel(wheel, "model_prices/snapshot.json")
        licenses = [read_from_wheel(wheel, ".dist-info/licenses/LICENSE"),
                    read_from_wheel(wheel, ".dist-info/licenses/data/LICENSE.models.dev")]
    table = build(snapshot, args.as_of)
    # MIT: the intl part is a substantial portion of model-prices' data, so ship both notices with it
    table["notices"] = [f"{n}\n\n{text.strip()}" for n, text in zip(table["notices"], licenses, strict=True)]
    if args.litellm_wheel:
        litellm = read_json_from_wheel(args.litellm_wheel, "model_prices_and_context_window_backup.json")
        problems = cross_check(table, litellm, args.as_of)
        for line in problems:
            print(f"litellm differs: {line}", file=sys.stderr)
        if problems and args.strict:
            return 1
    current = True
    for out, part in zip((args.out, args.huawei_out), split(table), strict=True):
        if args.check:
            old = out.read_text(encoding="utf-8") if out.exists() else ""
            same = json.loads(old)["entries"] == part["entries"] if old else False
            print(f"{out} is current" if same else f"{out} differs from a fresh build")
            current = current and same
            continue
        out.write_text(json.dumps(part, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out} ({len(part['entries'])} entries)")
    return 0 if current else 1


if __name__ == "__main__":
    raise SystemExit(main())
