"""Validate ``NEURON_CC_FLAGS`` before a job spends hours failing on a typo.

``neuronx-cc`` rejects unknown options and bad values only when the first graph
compiles, inside a running multi-node job. Checking the flags at synth time
turns that into a clear error naming the flag. Pure Python: the config layer
and the constructs both use it without importing CDK.
"""
from __future__ import annotations

import shlex

# Options taking a value, with the values neuronx-cc accepts (None: any value).
VALUE_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "--target": ("inf2", "trn1", "trn1n", "trn2"),
    "--model-type": ("generic", "transformer", "unet-inference"),
    "--auto-cast": ("none", "matmult", "all"),
    "--auto-cast-type": ("bf16", "fp16", "tf32", "fp8_e4m3"),
    "--optlevel": ("1", "2", "3"),
    "--distribution-strategy": ("llm-training",),
    "--cache_dir": None,
    "--logfile": None,
    "--verbose": ("debug", "info", "warning", "error", "critical"),
}
# Options without a value.
SWITCHES = (
    "-O1",
    "-O2",
    "-O3",
    "--enable-mixed-precision-accumulation",
    "--enable-saturate-infinity",
    "--enable-fast-loading-neuron-binaries",
    "--retry_failed_compilation",
)
TRAINIUM_TARGETS = ("trn1", "trn1n")


def parse_neuron_cc_flags(flags: str) -> tuple[dict[str, str], list[str]]:
    """Parse ``flags`` into ``({option: value or ""}, problems)``.

    ``--opt value`` and ``--opt=value`` are both accepted; ``-O1`` and
    ``--optlevel 1`` are the same setting and may not both be given.
    """
    try:
        words = shlex.split(flags)
    except ValueError as exc:
        return {}, [f"cannot split into words: {exc}"]
    parsed: dict[str, str] = {}
    problems: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name, has_inline, inline = word.partition("=")
        if name in VALUE_OPTIONS:
            if has_inline:
                value = inline
            elif i + 1 < len(words) and not words[i + 1].startswith("-"):
                i += 1
                value = words[i]
            else:
                problems.append(f"{name} needs a value")
                i += 1
                continue
            allowed = VALUE_OPTIONS[name]
            if allowed is not None and value not in allowed:
                problems.append(f"{name} {value!r} is not valid; allowed: {', '.join(allowed)}")
            elif not value:
                problems.append(f"{name} needs a value")
            _store(parsed, problems, name, value)
        elif word in SWITCHES:
            if word.startswith("-O"):
                _store(parsed, problems, "--optlevel", word[2:])
            else:
                _store(parsed, problems, word, "")
        else:
            problems.append(
                f"unknown option {word!r}; known options: {', '.join(sorted(VALUE_OPTIONS))}, {', '.join(SWITCHES)}"
            )
        i += 1
    return parsed, problems


def _store(parsed: dict[str, str], problems: list[str], key: str, value: str) -> None:
    if key in parsed:
        problems.append(f"{key} is given more than once (-O<n> and --optlevel are the same option)")
    parsed[key] = value


def neuron_cc_flag_problems(flags: str, *, trainium: bool = True) -> list[str]:
    """Every problem in ``flags``; ``trainium``: the target must be a Trainium one."""
    parsed, problems = parse_neuron_cc_flags(flags)
    target = parsed.get("--target")
    if trainium and target is not None and target not in TRAINIUM_TARGETS and not problems:
        problems.append(f"--target {target!r} does not run on Trainium instances; use one of {', '.join(TRAINIUM_TARGETS)}")
    return problems


def validate_neuron_cc_flags(flags: str, *, setting: str = "neuron_cc_flags", trainium: bool = True) -> str:
    """Return ``flags`` unchanged, or raise ``ValueError`` naming each problem."""
    problems = neuron_cc_flag_problems(flags, trainium=trainium)
    if problems:
        raise ValueError(f"{setting}: {flags!r} is invalid: " + "; ".join(problems))
    return flags
