"""The LLM stack's rendered serving options, fed through vLLM 0.15.1's own request validation
(the released package, installed from the llm/current lock), as LMI 20 passes an
``{"inputs": ..., "parameters": {...}}`` request to it.

No GPU is needed: the checks vLLM makes before scheduling a completion are plain Python
(vllm 0.15.1 ``entrypoints/openai/completion/serving.py`` ``_build_render_config``: requested
``max_tokens`` at most ``max_model_len``; ``entrypoints/renderer.py`` ``_create_tokens_prompt``:
prompt tokens at most ``max_model_len - max_tokens``; ``entrypoints/utils.py`` ``get_max_tokens``:
the tokens generated, capped by the generation config's ``max_tokens``, which
``override_generation_config``'s ``max_new_tokens`` sets, ``config/model.py``
``get_diff_sampling_param``). Prompts are given as token ids, so no tokenizer is loaded.

What these tests pin for users: a request within the documented limits is accepted; one asking
for more new tokens than ``max_new_tokens`` but fitting the context is accepted and cut; one past
the context is refused by vLLM (LMI 20 then answers 424, docs/llm.md); and invoke-llm refuses
exactly the requests vLLM refuses, before sending them.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
from vllm.entrypoints.renderer import CompletionRenderer
from vllm.entrypoints.utils import get_max_tokens
from vllm.exceptions import VLLMValidationError

from config import load_config
from config.llm import lmi_environment
from ml_tools.invoke_llm import over_context

PROD_MODELS = {m.name: m for m in load_config("prod").llm.resolved_models()}


def lmi_request(prompt_tokens: int, parameters: dict) -> CompletionRequest:
    """LMI 20's translation of its own request format into vLLM's completion request: the fields
    ``convert_lmi_schema_to_completion_request`` sets (djl-serving branch 0.36.0-lmi20-dlc,
    engines/python/setup/djl_python/lmi_vllm/request_response_utils.py): ``max_new_tokens``
    (default 30) becomes ``max_tokens``; ``do_sample = false`` becomes temperature 0."""
    parameters = dict(parameters)
    request = {"model": "model", "prompt": list(range(prompt_tokens)),
               "max_tokens": parameters.pop("max_new_tokens", 30), "echo": False, "n": 1, "stream": False}
    if parameters.pop("do_sample", None) is False:
        parameters["temperature"] = 0.0
    return CompletionRequest(**request, **parameters)


def served(environment: dict[str, str], prompt_tokens: int, max_new_tokens: int) -> int | VLLMValidationError:
    """The tokens vLLM would generate for the request, or its refusal."""
    max_model_len = int(environment["OPTION_MAX_MODEL_LEN"])
    generation = json.loads(environment["OPTION_OVERRIDE_GENERATION_CONFIG"])
    defaults = {"max_tokens": generation["max_new_tokens"]}  # get_diff_sampling_param's renaming
    request = lmi_request(prompt_tokens, {"max_new_tokens": max_new_tokens, "do_sample": False})
    serving = SimpleNamespace(max_model_len=max_model_len)  # the one attribute these checks read
    try:
        config = OpenAIServingCompletion._build_render_config(serving, request)
        CompletionRenderer._create_tokens_prompt(None, request.prompt, config.max_length)
    except VLLMValidationError as refusal:
        return refusal
    return get_max_tokens(max_model_len, request, prompt_tokens, defaults)


@pytest.mark.parametrize("name", sorted(PROD_MODELS))
def test_the_documented_limits_are_served(name):
    model = PROD_MODELS[name]
    environment = lmi_environment(model)
    assert int(environment["OPTION_MAX_MODEL_LEN"]) == model.context_length == 2048
    assert served(environment, model.max_input_tokens, model.max_new_tokens) == model.max_new_tokens


@pytest.mark.parametrize("name", sorted(PROD_MODELS))
def test_more_new_tokens_than_allowed_are_cut_when_the_request_fits_the_context(name):
    model = PROD_MODELS[name]
    assert served(lmi_environment(model), 100, model.max_new_tokens + 500) == model.max_new_tokens


def test_past_the_context_vllm_refuses_and_names_the_limit():
    environment = lmi_environment(PROD_MODELS["bloom-176b"])
    refusal = served(environment, 1700, 400)
    assert isinstance(refusal, VLLMValidationError) and refusal.parameter == "input_tokens"
    # vLLM names max_model_len minus the requested tokens as the "maximum context length".
    assert "maximum context length is 1648 tokens" in str(refusal)
    too_many = served(environment, 10, 4000)
    assert isinstance(too_many, VLLMValidationError) and too_many.parameter == "max_tokens"
    assert "cannot be greater than the model's maximum context length (2048)" in str(too_many)


@pytest.mark.parametrize("prompt_tokens", [1, 1024, 1500, 1647, 1648, 1649, 2000, 2047, 2048, 2049])
@pytest.mark.parametrize("max_new_tokens", [1, 64, 400, 1024, 2047, 2048])
def test_invoke_llm_refuses_exactly_what_vllm_refuses(prompt_tokens, max_new_tokens):
    environment = lmi_environment(PROD_MODELS["bloom-176b"])
    refused = isinstance(served(environment, prompt_tokens, max_new_tokens), VLLMValidationError)
    assert over_context(prompt_tokens, max_new_tokens, int(environment["OPTION_MAX_MODEL_LEN"])) == refused
