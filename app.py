#!/usr/bin/env python3
"""CDK app entry: read configuration once, validate it, build the platform.

    npx cdk synth -c env=prod
    npx cdk synth -c env=dev -c config=my-overlay.toml -c set:multi_model.instance_count=2
"""
import json
import sys
from pathlib import Path

import aws_cdk as cdk

from config import ConfigError, load_config_from_context
from stacks.platform import build_platform

CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def main() -> None:
    # cdk.json's feature flags as defaults: the CLI passes them anyway (and its -c values win),
    # and `python app.py` on its own then synthesizes the same templates.
    app = cdk.App(context=json.loads(CDK_JSON.read_text())["context"])
    try:
        cfg = load_config_from_context(app.node.get_all_context())
    except ConfigError as exc:
        sys.exit(f"cdk synth aborted, nothing was synthesized.\n{exc}")
    build_platform(app, cfg)
    app.synth()


if __name__ == "__main__":
    main()
