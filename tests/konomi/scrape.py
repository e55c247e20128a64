"""Reading a Konomi server's ``/metrics`` the way Prometheus does, for the tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset], float]


def scrape(http: httpx.Client, host: str) -> Samples:
    """Every sample of ``http://host/metrics``, keyed by (name, labels), fetched without
    the token, parsed with prometheus_client's own text parser."""
    r = http.get(f"http://{host}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a series not exported (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def growth(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a series grew between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)
