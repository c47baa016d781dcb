"""The dashboard names a model served by several providers with its provider in legends and bars."""

from __future__ import annotations

from tokenmeter.dashboard_values import chart_data


def test_model_served_by_several_providers_is_labelled_with_its_provider():
    row = {"cost": "1", "currency": "USD", "cost_kind": "logged", "requests": 1, "total_tokens": 10}
    data = {"by_model": [dict(row, model="qwen-flash", provider="qwen-beijing"),
                         dict(row, model="qwen-flash", provider="qwen-virginia"),
                         dict(row, model="qwen-max", provider="qwen")]}
    labels = [m["label"] for m in chart_data(data, "USD")["by_model"]]
    assert labels == ["qwen-flash (qwen-beijing)", "qwen-flash (qwen-virginia)", "qwen-max"]
    assert len(set(labels)) == len(labels)  # every bar and legend entry can be told apart
