"""The price table kept in the repository (``config/prices/<region>.toml``), read offline.

Every instance type an enabled workload uses must have a price: an unpriced type is a
configuration error (:func:`price_problems`), so the cost figures never silently leave
an endpoint out.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ml_constructs.sagemaker.instances import hosting_type_problems

PRICES_DIR = Path(__file__).resolve().parent / "prices"
PRICE_REGION = "us-east-1"


@dataclass(frozen=True)
class Price:
    hourly: float
    basis: str  # "list" (transcribed from the public page) or "estimate"


@dataclass(frozen=True)
class PriceTable:
    region: str
    as_of: str
    sagemaker_hosting: dict[str, Price]
    ec2: dict[str, Price]
    network: dict[str, Price]

    def hosting(self, instance_type: str) -> Price | None:
        return self.sagemaker_hosting.get(instance_type)

    def host(self, instance_type: str) -> Price | None:
        return self.ec2.get(instance_type)


@lru_cache(maxsize=None)
def load_prices(region: str = PRICE_REGION) -> PriceTable:
    data = tomllib.loads((PRICES_DIR / f"{region}.toml").read_text(encoding="utf-8"))

    def section(name: str) -> dict[str, Price]:
        return {key: _price(name, key, value) for key, value in data[name].items()}

    return PriceTable(data["region"], data["as_of"], section("sagemaker_hosting"), section("ec2"), section("network"))


def prices_for(region: str | None) -> PriceTable:
    """The table of ``region`` if the repository has one, else the us-east-1 table."""
    if region and (PRICES_DIR / f"{region}.toml").is_file():
        return load_prices(region)
    return load_prices()


def _price(section: str, key: str, value: Any) -> Price:
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], (int, float))
            or value[0] < 0 or value[1] not in ("list", "estimate")):
        raise ValueError(f"price table [{section}] {key!r}: got {value!r}, expected [hourly USD, \"list\" | \"estimate\"]")
    return Price(float(value[0]), value[1])


def price_problems(cfg: Any) -> list[tuple[str, str]]:
    """``(key, message)`` for each instance type of an enabled workload with no price (PlatformConfig.problems)."""
    table = prices_for(cfg.region)
    found = []

    def need(key: str, instance_type: str, lookup: dict[str, Price]) -> None:
        if lookup is table.sagemaker_hosting and hosting_type_problems(instance_type):
            return  # not a hosting type at all: that key's own problem says so, and a price would not help
        if instance_type not in lookup:
            found.append((key, f"got {instance_type!r}, which has no price in config/prices/{table.region}.toml; "
                          f"allowed: a priced type ({len(lookup)} listed there), or add its price with its source"))

    sd = cfg.stable_diffusion
    if sd.enabled:
        need("stable_diffusion.instance_type", sd.instance_type, table.sagemaker_hosting)
        if sd.compile.enabled:
            need("stable_diffusion.compile.instance_type", sd.compile.instance_type, table.ec2)
    if cfg.multi_model.enabled:
        need("multi_model.instance_type", cfg.multi_model.instance_type, table.sagemaker_hosting)
    if cfg.llm.enabled:
        for model in cfg.llm.resolved_models():
            need(f"llm.models.{model.name}.instance_type", model.instance_type, table.sagemaker_hosting)
    if cfg.training.enabled:
        need("training.instance_type", cfg.training.instance_type, table.ec2)
    return found
