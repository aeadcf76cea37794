"""A demo provider with knobs, for the pipeline tests of skipping, resetting and
restatements: symbols it refuses (`failing`), and bars whose prices it restates (`restated`:
(symbol, ISO date) -> a factor on open, high, low and close). Reset the knobs with `reset()`."""

from __future__ import annotations

import dataclasses
import json

from stockpipe.errors import SymbolNotFoundError
from stockpipe.providers import registry
from stockpipe.providers.demo import DemoProvider

NAME = "knobbed"


class Knobbed(DemoProvider):
    name = NAME
    failing: set[str] = set()
    restated: dict[tuple[str, str], float] = {}

    def fetch_daily(self, symbol, start, end):
        if symbol in Knobbed.failing:
            raise SymbolNotFoundError(f"{NAME} does not know {symbol}")
        payload = super().fetch_daily(symbol, start, end)
        doc = json.loads(payload.content)
        bars = doc["bars"]
        for i, day in enumerate(bars["date"]):
            factor = Knobbed.restated.get((symbol, str(day)[:10]))
            if factor:
                for column in ("open", "high", "low", "close"):
                    bars[column][i] = round(bars[column][i] * factor, 4)
        return dataclasses.replace(payload, provider=NAME, content=json.dumps(doc).encode())


def reset() -> None:
    Knobbed.failing, Knobbed.restated = set(), {}


registry.register(NAME, Knobbed.from_settings)
