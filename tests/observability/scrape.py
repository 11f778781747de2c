"""Scrape /metrics and read it with prometheus-client's own parser (which checks the
format): samples by name and labels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass
class Scrape:
    text: str
    samples: list[Sample]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of every sample ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def label_values(self, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if label in s.labels}


def parse(text: str) -> Scrape:
    samples: list[Sample] = []
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        samples.extend(family.samples)
    return Scrape(text, samples, types)


def scrape(url: str, auth: tuple[str, str] | None = None) -> Scrape:
    r = httpx.get(url, auth=auth, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return parse(r.text)


def settled(
    url: str, check: Callable[[Scrape], None], auth: tuple[str, str] | None = None
) -> Scrape:
    """Scrape until ``check`` passes: each worker writes its counts once a second, so a
    scrape may miss another worker's last second. The last failure is raised."""
    deadline = time.monotonic() + 15
    while True:
        found = scrape(url, auth)
        try:
            check(found)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
        else:
            return found


async def _burst(url: str, auth: tuple[str, str], count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        responses = await asyncio.gather(*(client.get(url, auth=auth) for _ in range(count)))
    return [r.status_code for r in responses]


def burst(url: str, auth: tuple[str, str], count: int = 12) -> list[int]:
    """``count`` logins at once: the throttle admits its threshold, then refuses (429),
    however slow the machine (one by one, a wait may run out between two tries)."""
    return asyncio.run(_burst(url, auth, count))
