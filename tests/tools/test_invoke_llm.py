"""invoke-llm against LMI's answer format: one request per prompt, one object per answer."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import boto3
from botocore.stub import Stubber

from ml_tools import invoke_llm


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    invoke_llm.configure(parser)
    return parser.parse_args(["--endpoint-name", "opt", *argv])


def answer(text: str) -> dict:
    return {"Body": io.BytesIO(json.dumps({"generated_text": text}).encode()), "ContentType": "application/json"}


def test_each_prompt_is_its_own_request_and_lmi_answers_are_printed_in_order(capsys):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        for prompt, text in (("the cat", " sat"), ("a dog", " ran")):
            body = json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": 32, "do_sample": False}})
            stub.add_response("invoke_endpoint", answer(text), {
                "EndpointName": "opt", "ContentType": "application/json", "Accept": "application/json", "Body": body})
        assert invoke_llm.run(parsed("the cat", "a dog", "--max-new-tokens", "32"), client=client) == 0
        stub.assert_no_pending_responses()
    assert capsys.readouterr().out == "--- the cat\n sat\n--- a dog\n ran\n"


def test_an_answer_without_generated_text_is_reported(capsys):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", {"Body": io.BytesIO(b'{"error": "x"}'), "ContentType": "application/json"})
        assert invoke_llm.run(parsed("hi"), client=client) == 1
    assert "invoke-llm: unexpected answer" in capsys.readouterr().err


# ---- the context limit, checked before anything is sent --------------------------------------


def silent_client():
    """A client with no answers queued: any request would fail the test."""
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    return client, Stubber(client)


def byte_level_tokenizer(tmp_path) -> Path:
    """A real byte-level BPE tokenizer.json (the kind BLOOM and OPT ship), trained on repeated words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["hello world " * 50, "the cat sat on the mat " * 50], trainer=trainer)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return tmp_path


def test_a_prompt_over_the_context_is_refused_naming_the_limit_and_nothing_is_sent(capsys):
    client, stub = silent_client()
    with stub:
        assert invoke_llm.run(parsed("x" * 1900, "--max-new-tokens", "200"), client=client) == 2
    err = capsys.readouterr().err
    assert err == ("invoke-llm: prompt 1: 1902 tokens at most (UTF-8 bytes + special tokens; --tokenizer counts "
                   "exactly) + --max-new-tokens 200 = 2102, over the model's context of 2048 tokens (the endpoint's "
                   "max_model_len); allowed: --max-new-tokens at most 146, or a prompt of at most 1848 tokens\n")


def test_max_new_tokens_alone_at_the_context_is_refused(capsys):
    client, stub = silent_client()
    with stub:
        assert invoke_llm.run(parsed("hi", "--max-new-tokens", "2048"), client=client) == 2
        assert invoke_llm.run(parsed("hi", "--max-new-tokens", "600", "--context-length", "512"), client=client) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "invoke-llm: --max-new-tokens: got 2048, allowed: at most 2047 (the model's context is 2048 tokens, prompt "
        "included)",
        "invoke-llm: --max-new-tokens: got 600, allowed: at most 511 (the model's context is 512 tokens, prompt "
        "included)",
    ]


def test_the_tokenizer_counts_exactly_so_a_prompt_the_byte_bound_refuses_is_sent(tmp_path, capsys):
    folder = byte_level_tokenizer(tmp_path)
    prompt = "hello world " * 200  # 2400 bytes, far fewer tokens
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        assert invoke_llm.run(parsed(prompt, "--max-new-tokens", "64"), client=client) == 2  # bytes: cannot tell
        stub.add_response("invoke_endpoint", answer(" ok"))
        assert invoke_llm.run(parsed(prompt, "--max-new-tokens", "64", "--tokenizer", str(folder)), client=client) == 0
        stub.assert_no_pending_responses()


def test_with_the_tokenizer_an_over_limit_prompt_names_its_exact_token_count(tmp_path, capsys):
    from tokenizers import Tokenizer

    folder = byte_level_tokenizer(tmp_path)
    prompt = "zq" * 1100  # letters the training text lacks: about one token per byte
    tokens = len(Tokenizer.from_file(str(folder / "tokenizer.json")).encode(prompt).ids)
    assert tokens + 10 > 2048
    client, stub = silent_client()
    with stub:
        assert invoke_llm.run(parsed(prompt, "--max-new-tokens", "10", "--tokenizer", str(folder / "tokenizer.json")),
                              client=client) == 2
    assert capsys.readouterr().err.startswith(f"invoke-llm: prompt 1: {tokens} tokens + --max-new-tokens 10 = ")


def test_a_missing_tokenizer_is_one_line(tmp_path, capsys):
    client, stub = silent_client()
    with stub:
        assert invoke_llm.run(parsed("hi", "--tokenizer", str(tmp_path)), client=client) == 2
    assert capsys.readouterr().err == (f"invoke-llm: --tokenizer: {tmp_path / 'tokenizer.json'} not found (give the "
                                       "staged snapshot folder or its tokenizer.json)\n")
