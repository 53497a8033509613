"""``python -m ml_tools <subcommand> ...``: one entry point for the user tools.

Each subcommand lives in its own module exposing ``configure(parser)`` (adds its
arguments) and ``run(args) -> int`` (the exit status). Modules are imported only
when their subcommand runs, so a tool's heavy imports never slow the others.
To add one, add a line to ``SUBCOMMANDS``. Standalone tools with their own
``main(argv) -> int`` (``python -m ml_tools.<module>``) are listed in
``STANDALONE`` and get the rest of the command line as it is.

Every command runs inside one error translator: an AWS error a user can fix (no
region, no credentials, access denied, a missing bucket, stack, endpoint or job
definition) becomes one line saying what to do, with exit code 2; an endpoint's
own refusal (its model's error) is one line with exit code 1. Tools therefore
let botocore's exceptions propagate instead of handling them each.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "publish-models": ("ml_tools.publish_models", "build and upload the multi-model endpoint's packages"),
    "invoke-sd": ("ml_tools.invoke_sd", "generate an image with the Stable Diffusion endpoint"),
    "invoke-llm": ("ml_tools.invoke_llm", "generate text with an LLM endpoint"),
    "invoke-mme": ("ml_tools.invoke_mme", "call one model of the multi-model endpoint"),
    "stage-weights": ("ml_tools.stage_weights", "copy a local model snapshot into a weights prefix (idempotent)"),
    "cost": ("ml_tools.cost", "hourly cost of an environment at its floor and its ceiling (offline)"),
    "preflight": ("ml_tools.preflight", "read-only checks of an account and region before a deploy (quotas, "
                  "offerings, bootstrap, images, AMI, weights, Docker)"),
    "verify": ("ml_tools.verify", "check each endpoint runs the deployed config and answers (after a deploy)"),
}

# Tools that call an endpoint: --env finds its name in this stack's outputs.
ENDPOINT_STACKS: dict[str, str] = {"invoke-sd": "StableDiffusion", "invoke-llm": "Llm", "invoke-mme": "MultiModel"}

# name -> (module with main(argv), one-line help)
STANDALONE: dict[str, tuple[str, str]] = {
    "submit-training-job": ("ml_tools.submit_training_job", "submit a training job to the Trainium Batch queue"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(prog="python -m ml_tools", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="subcommand")
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the chosen tool's module is imported
            importlib.import_module(module).configure(child)
    for name, (_module, help_text) in STANDALONE.items():
        sub.add_parser(name, help=help_text + " (its own options: <subcommand> --help)")
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in STANDALONE:
        module = STANDALONE[argv[0]][0]
        return _translated(argv[0], lambda: importlib.import_module(module).main(argv[1:]))
    parser, chosen = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2

    def run() -> int:
        if chosen in ENDPOINT_STACKS:
            from ml_tools.runtime import resolve_endpoint_name

            resolve_endpoint_name(args, ENDPOINT_STACKS[chosen])
        return importlib.import_module(SUBCOMMANDS[chosen][0]).run(args)

    return _translated(chosen, run)


def _translated(command: str, run: Callable[[], int]) -> int:
    """Run one command; a user-fixable error is one line on stderr, not a traceback."""
    from ml_tools.runtime import EndpointError, ToolError, explain_aws_error

    try:
        return int(run())
    except EndpointError as err:  # the endpoint's refusal is the answer, not a crash
        print(f"{command}: {err}", file=sys.stderr)
        return 1
    except ToolError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        explained = explain_aws_error(err)
        if explained is None:
            raise
        print(f"{command}: {explained}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
