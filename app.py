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


ABORTED = "cdk synth aborted, nothing was synthesized."


def main() -> int:
    """0 after a synth; 1 with one message on stderr for a configuration the platform refuses."""
    # cdk.json's feature flags as defaults: the CLI passes them anyway (and its -c values win),
    # and `python app.py` on its own then synthesizes the same templates.
    app = cdk.App(context=json.loads(CDK_JSON.read_text())["context"])
    try:
        cfg = load_config_from_context(app.node.get_all_context())
    except ConfigError as exc:
        print(f"{ABORTED}\n{exc}", file=sys.stderr)
        return 1
    try:
        build_platform(app, cfg)
    except ValueError as exc:
        # The constructs check their props again; a combination the configuration
        # rules let through still ends in one message, not a traceback.
        print(f"{ABORTED}\nThe environment {cfg.environment!r} was accepted by the configuration rules but a "
              f"construct refused it:\n{exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
