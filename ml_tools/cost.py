"""What an environment costs per hour, at its floor (idle) and at its ceiling (every limit reached).

    python -m ml_tools cost --env prod
    python -m ml_tools cost --env dev --summary          # the one line `make synth` prints
    python -m ml_tools cost --env prod --set llm.models.opt-30b.hosting.mode=inference-components

Reads the validated configuration (``config.load_config``) and the price table
``config/prices/<region>.toml``; no AWS call. Counted: SageMaker endpoint instances,
the AWS Batch hosts of the compile and training compute environments (0 at the floor:
they scale from zero), NAT gateways and interface VPC endpoints (the training cluster's, and the
private endpoint network's with ``endpoint_network.private``: per endpoint per AZ). Not counted: storage,
requests, data transfer and processing, logs, KMS keys (docs/costs.md).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from config import ConfigError, known_environments, load_config
from config.hosting import HostingConfig, resolve_component
from config.prices import PriceTable, prices_for


@dataclass(frozen=True)
class Line:
    """One priced item of one stack: how many units at the floor and at the ceiling, at what hourly price."""

    stack: str
    item: str
    floor_units: float
    ceiling_units: float
    unit_price: float

    @property
    def floor(self) -> float:
        return self.floor_units * self.unit_price

    @property
    def ceiling(self) -> float:
        return self.ceiling_units * self.unit_price


@dataclass(frozen=True)
class Estimate:
    environment: str
    prices: PriceTable
    lines: list[Line]
    region: str | None = None

    @property
    def floor(self) -> float:
        return sum(line.floor for line in self.lines)

    @property
    def ceiling(self) -> float:
        return sum(line.ceiling for line in self.lines)

    def stacks(self) -> list[str]:
        return list(dict.fromkeys(line.stack for line in self.lines))


def estimate(cfg: Any, prices: PriceTable | None = None) -> Estimate:
    """Every priced item of ``cfg``'s enabled stacks (``cfg`` is validated: every type has a price)."""
    prices = prices or prices_for(cfg.region)
    lines: list[Line] = []

    def stack(component: str) -> str:
        return f"{cfg.stack_prefix}-{cfg.environment}-{component}"

    def hosting_price(instance_type: str) -> float:
        return prices.sagemaker_hosting[instance_type].hourly

    nat = prices.network["nat_gateway"].hourly
    per_endpoint_az = prices.network["interface_endpoint_per_az"].hourly
    if cfg.endpoint_network.private:
        from ml_constructs.sagemaker.network_endpoints import AVAILABILITY_ZONES, INTERFACE_ENDPOINTS

        count = len(INTERFACE_ENDPOINTS)
        lines.append(Line(stack("Storage"), f"{count} interface VPC endpoints in {AVAILABILITY_ZONES} AZs "
                          "(endpoint_network.private)", count * AVAILABILITY_ZONES, count * AVAILABILITY_ZONES,
                          per_endpoint_az))
    sd = cfg.stable_diffusion
    if sd.enabled:
        name = stack("StableDiffusion")
        if sd.endpoint_enabled:  # false on a long compile's first deploy: the compile only
            lines.append(_endpoint_line(name, "endpoint", sd.instance_type, hosting_price(sd.instance_type),
                                        sd.instance_count, sd.autoscaling, sd.hosting, _async_bounds(sd)))
        if sd.compile.enabled:
            lines.append(Line(name, f"compile host: 0..1 x {sd.compile.instance_type} (AWS Batch, scales from zero)",
                              0, 1, prices.ec2[sd.compile.instance_type].hourly))
            lines.append(Line(name, "NAT gateway of the compile VPC", 1, 1, nat))
    mm = cfg.multi_model
    if mm.enabled:
        lines.append(_endpoint_line(stack("MultiModel"), "endpoint", mm.instance_type, hosting_price(mm.instance_type),
                                    mm.instance_count, mm.autoscaling, None, None))
    if cfg.llm.enabled:
        for model in cfg.llm.resolved_models():
            lines.append(_endpoint_line(stack("Llm"), f"endpoint {model.name}", model.instance_type,
                                        hosting_price(model.instance_type), model.instance_count, None,
                                        model.hosting, None))
    tr = cfg.training
    if tr.enabled:
        name = stack("Training")
        nodes = tr.capacity_nodes
        lines.append(Line(name, f"training hosts: 0..{nodes} x {tr.instance_type} (AWS Batch, scales from zero)",
                          0, nodes, prices.ec2[tr.instance_type].hourly))
        lines.append(Line(name, f"evaluation and batch inference hosts: 0..{tr.evaluation_max_instances} x "
                          f"{tr.evaluation_instance_type} (AWS Batch, scales from zero)",
                          0, tr.evaluation_max_instances, prices.ec2[tr.evaluation_instance_type].hourly))
        if tr.existing_vpc is None and tr.egress == "nat_gateway":
            lines.append(Line(name, "NAT gateway of the cluster VPC", 1, 1, nat))
        elif tr.existing_vpc is None:
            from ml_constructs.trainium_batch.endpoints import INTERFACE_ENDPOINTS

            count = len(INTERFACE_ENDPOINTS)  # one AZ: the cluster's
            lines.append(Line(name, f"{count} interface VPC endpoints in 1 AZ", count, count, per_endpoint_az))
    return Estimate(cfg.environment, prices, lines, cfg.region)


def _endpoint_line(stack: str, label: str, instance_type: str, price: float, count: int, autoscaling: Any,
                   hosting: HostingConfig | None, async_bounds: tuple[int, int] | None) -> Line:
    if hosting is not None and hosting.uses_components:
        resolved = resolve_component(hosting, instance_type)
        floor_for_copies = resolved.instances_for(resolved.min_copies) if resolved else 0
        low, high, how = max(hosting.floor_instances, floor_for_copies), hosting.max_instances, "inference components"
    elif async_bounds is not None:
        (low, high), how = async_bounds, "asynchronous"
    elif autoscaling is not None and autoscaling.enabled:
        low, high, how = autoscaling.min_capacity, autoscaling.max_capacity, "autoscaled"
    else:
        low, high, how = count, count, "fixed"
    return Line(stack, f"{label}: {low}..{high} x {instance_type} ({how})", low, high, price)


def _async_bounds(sd: Any) -> tuple[int, int] | None:
    async_cfg = getattr(sd, "async_inference", None)
    if async_cfg is None or not async_cfg.enabled:
        return None
    return async_cfg.min_instances, async_cfg.max_instances


def render(result: Estimate) -> str:
    p = result.prices
    out = [f"Hourly cost of environment {result.environment!r}: {p.region} on-demand prices as of {p.as_of} "
           f"(config/prices/{p.region}.toml), USD"]
    width = max([len(line.item) for line in result.lines] + [40]) + 4
    out.append(f"{'':{width}}{'floor':>10}{'ceiling':>10}")
    for stack in result.stacks():
        lines = [line for line in result.lines if line.stack == stack]
        out.append(stack)
        out += [f"  {line.item:{width - 2}}{line.floor:10.3f}{line.ceiling:10.3f}" for line in lines]
        out.append(f"  {'subtotal':{width - 2}}{sum(x.floor for x in lines):10.3f}{sum(x.ceiling for x in lines):10.3f}")
    out.append(f"{'total':{width}}{result.floor:10.3f}{result.ceiling:10.3f}")
    estimates = sorted({line.item.split(' x ')[-1].split(' ')[0] for line in result.lines if ' x ' in line.item}
                       & {k for k, v in {**p.sagemaker_hosting, **p.ec2}.items() if v.basis == "estimate"})
    if estimates:
        out.append(f"Estimated (no list price transcribed): {', '.join(estimates)}")
    if result.region not in (None, p.region):
        out.append(f"The environment is pinned to {result.region}; these are {p.region} prices (add "
                   f"config/prices/{result.region}.toml for that region's).")
    out.append("Not counted: storage, requests, data transfer and processing, logs, KMS keys (docs/costs.md).")
    return "\n".join(out)


def summary(result: Estimate) -> str:
    return (f"{result.environment}: about ${result.floor:,.2f}/h at the floor, ${result.ceiling:,.2f}/h at the ceiling "
            f"({result.prices.region} list prices of {result.prices.as_of}; details: python -m ml_tools cost "
            f"--env {result.environment})")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="dev", help=f"environment ({', '.join(known_environments())}; default dev)")
    parser.add_argument("--config", help="an overlay file, as with cdk synth -c config=FILE")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a single setting, as with cdk synth -c set:KEY=VALUE (repeatable)")
    parser.add_argument("--summary", action="store_true", help="one line: the floor and the ceiling")


def run(args: argparse.Namespace) -> int:
    from ml_tools.runtime import set_overrides

    try:
        cfg = load_config(args.env, overlay_file=args.config, overrides=set_overrides(args.set))
    except ConfigError as err:
        print(f"cost: nothing estimated.\n{err}", file=sys.stderr)
        return 2
    result = estimate(cfg)
    print(summary(result) if args.summary else render(result))
    return 0
