"""The DeepSpeed LLM package (runtime profile llm/seed): weights from the model directory or a
parallel download against moto's S3, the rank barrier, the request limits, and request/response
handling with a tiny real causal LM (DeepSpeed itself needs GPUs)."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import boto3
import pytest
from djl_python import Input
from moto import mock_aws

from tests.model_packages.conftest import PACKAGES, load_module
from tests.model_packages.tiny_models import save_tiny_causal_lm

llm = load_module(PACKAGES / "llm_deepspeed" / "model.py")
BUCKET = "weights-bucket"
FILES = {"config.json": b"{}", "shards/part-0.bin": b"\x00" * 2048, "shards/part-1.bin": b"\x01" * 1024}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for name, data in FILES.items():
            client.put_object(Bucket=BUCKET, Key=f"bloom/{name}", Body=data)
        client.put_object(Bucket=BUCKET, Key="bloom-int8/other.bin", Body=b"not ours")  # shares the prefix text
        client.put_object(Bucket=BUCKET, Key="bloom/", Body=b"")  # console "folder" placeholder
        yield client


def settings(tmp_path: Path, rank: int = 0, bucket: str = BUCKET, prefix: str = "bloom") -> object:
    env = {"MODEL_S3_BUCKET": bucket, "MODEL_S3_PREFIX": prefix, "LOCAL_RANK": str(rank),
           "TENSOR_PARALLEL_DEGREE": "2", "MODEL_DOWNLOAD_DIR": str(tmp_path / "model")}
    return llm.Settings.from_env(env, {"dtype": "fp16"})


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_complete_download_then_marker(s3, tmp_path: Path):
    dest = llm.download_model(BUCKET, "bloom/", tmp_path / "model", s3)
    files = local_files(dest)
    marker = json.loads(files.pop(llm.MARKER))
    assert files == FILES
    assert marker == {"source": "s3://weights-bucket/bloom/", "objects": 3, "bytes": 2048 + 1024 + 2}


def test_marker_is_reused_without_touching_s3(s3, tmp_path: Path):
    llm.download_model(BUCKET, "bloom/", tmp_path / "model", s3)
    calls = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    llm.download_model(BUCKET, "bloom/", tmp_path / "model", s3)
    assert calls == []


def test_marker_of_another_source_triggers_a_new_download(s3, tmp_path: Path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / llm.MARKER).write_text(json.dumps({"source": "s3://weights-bucket/opt30b/"}))
    (tmp_path / "model" / "ds_inference_config.json").write_text("{}")  # the old model was pre-sharded
    dest = llm.download_model(BUCKET, "bloom/", tmp_path / "model", s3)
    assert sorted(local_files(dest)) == sorted([*FILES, llm.MARKER])  # nothing of the old model is left
    assert (dest / "shards" / "part-1.bin").read_bytes() == FILES["shards/part-1.bin"]
    assert json.loads((dest / llm.MARKER).read_text())["source"] == "s3://weights-bucket/bloom/"


def test_partial_failure_leaves_no_marker_and_names_the_cause(s3, tmp_path: Path):
    # The second object disappears between listing and download (deleted meanwhile).
    def deny_second_shard(params, **_):
        if params["Key"].endswith("part-1.bin"):
            s3.delete_object(Bucket=BUCKET, Key=params["Key"])

    s3.meta.events.register("before-parameter-build.s3.HeadObject", deny_second_shard)
    with pytest.raises(llm.DownloadError, match=r"downloading s3://weights-bucket/bloom/ failed: .*(404|Not Found)"):
        llm.download_model(BUCKET, "bloom/", tmp_path / "model", s3)
    assert not (tmp_path / "model" / llm.MARKER).exists()
    assert (tmp_path / "model" / "config.json").exists()  # what arrived stays; the marker decides


def test_missing_bucket_fails_fast_with_the_cause(tmp_path: Path):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        start = time.monotonic()
        with pytest.raises(llm.DownloadError, match=r"s3://no-such-bucket/bloom/ failed: NoSuchBucket"):
            llm.download_model("no-such-bucket", "bloom/", tmp_path / "model", client)
        assert time.monotonic() - start < 5
    assert not (tmp_path / "model" / llm.MARKER).exists()


def test_empty_prefix_is_an_error_naming_the_settings(s3, tmp_path: Path):
    with pytest.raises(llm.DownloadError, match=r"no objects under s3://weights-bucket/nothing-here/: check MODEL_S3_BUCKET"):
        llm.download_model(BUCKET, "nothing-here/", tmp_path / "model", s3)


def test_ranks_meet_at_the_barrier_and_only_rank_0_downloads(s3, tmp_path: Path):
    barrier = threading.Barrier(2, timeout=10)
    downloads, results = [], {}

    def client_factory():
        downloads.append(threading.current_thread().name)
        return s3

    def run(rank: int):
        results[rank] = llm.prepare_weights(settings(tmp_path, rank), barrier=barrier.wait, client_factory=client_factory)

    threads = [threading.Thread(target=run, args=(r,), name=f"rank{r}") for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert downloads == ["rank0"]
    assert results == {0: tmp_path / "model", 1: tmp_path / "model"}


def test_every_rank_fails_when_rank_0_download_fails(tmp_path: Path):
    barrier = threading.Barrier(2, timeout=10)
    errors = {}
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")

        def run(rank: int):
            try:
                llm.prepare_weights(settings(tmp_path, rank, bucket="missing"), barrier=barrier.wait,
                                    client_factory=lambda: client)
            except llm.DownloadError as err:
                errors[rank] = str(err)

        threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
    assert "NoSuchBucket" in errors[0]
    assert errors[1] == "rank 1: rank 0 did not complete s3://missing/bloom/; see rank 0's log"


def run_ranks(tmp_path: Path, client_factory, barrier_timeout: float = 10) -> tuple[dict, float]:
    barrier = threading.Barrier(2, timeout=barrier_timeout)
    errors = {}

    def run(rank: int):
        try:
            llm.prepare_weights(settings(tmp_path, rank), barrier=barrier.wait, client_factory=client_factory)
        except llm.DownloadError as err:
            errors[rank] = str(err)

    start = time.monotonic()
    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(barrier_timeout + 5)
    return errors, time.monotonic() - start


def test_every_rank_fails_fast_on_an_exhausted_transfer(s3, tmp_path: Path):
    from boto3.exceptions import RetriesExceededError

    def give_up(*_args, **_kwargs):
        raise RetriesExceededError(ConnectionResetError("connection reset by peer"))

    s3.download_file = give_up  # what s3transfer raises once its own retries are spent
    errors, elapsed = run_ranks(tmp_path, lambda: s3)
    assert elapsed < 5  # not the barrier's 10 s timeout
    assert errors[0] == "downloading s3://weights-bucket/bloom/ failed: Max Retries Exceeded"
    assert errors[1] == "rank 1: rank 0 did not complete s3://weights-bucket/bloom/; see rank 0's log"


def test_every_rank_fails_fast_when_no_client_can_be_made(tmp_path: Path):
    from botocore.exceptions import NoRegionError

    def no_region():
        raise NoRegionError()

    errors, elapsed = run_ranks(tmp_path, no_region)
    assert elapsed < 5
    assert errors[0] == "downloading s3://weights-bucket/bloom/ failed: NoRegionError: You must specify a region."
    assert errors[1].startswith("rank 1: rank 0 did not complete")


def test_weights_in_the_model_directory_are_used_without_downloading(tmp_path: Path):
    model_dir = tmp_path / "opt-ml-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    factories, barriers = [], []
    for rank in (0, 1):
        got = llm.weights_dir(settings(tmp_path, rank), {"model_dir": str(model_dir)},
                              barrier=lambda: barriers.append(1), client_factory=lambda: factories.append(1))
        assert got == model_dir
    assert factories == [] and barriers == [] and not (tmp_path / "model").exists()


def test_model_directory_without_weights_falls_back_to_the_download(s3, tmp_path: Path):
    (tmp_path / "opt-ml-model").mkdir()  # packaged code only, no config.json
    got = llm.weights_dir(settings(tmp_path), {"model_dir": str(tmp_path / "opt-ml-model")},
                          barrier=lambda: None, client_factory=lambda: s3)
    assert got == tmp_path / "model" and (got / "shards" / "part-0.bin").exists()


def test_s3_client_gives_up_in_seconds(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = llm.s3_client().meta.config
    assert config.retries == {"total_max_attempts": 4, "mode": "standard"}  # 3 retries
    assert config.connect_timeout == 10
    assert config.max_pool_connections >= llm.DOWNLOAD_THREADS


def test_objects_are_downloaded_several_at_a_time(s3, tmp_path: Path):
    for index in range(6):
        s3.put_object(Bucket=BUCKET, Key=f"bloom/shards/extra-{index}.bin", Body=b"x" * 10)
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def start(**_):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)  # long enough for the other threads to start theirs

    def end(**_):
        with lock:
            in_flight[0] -= 1

    s3.meta.events.register("before-call.s3.GetObject", start)
    s3.meta.events.register("after-call.s3.GetObject", end)
    dest = llm.download_model(BUCKET, "bloom/", tmp_path / "model", s3)
    assert len(local_files(dest)) == len(FILES) + 6 + 1  # and the marker
    assert most[0] > 1


def test_without_boto3_the_download_fails_naming_the_staging_step(monkeypatch, tmp_path: Path):
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # the DeepSpeed 0.19 image has no boto3
    errors, elapsed = run_ranks(tmp_path, llm.s3_client)
    assert elapsed < 5
    assert "has no boto3" in errors[0] and "weights prefix" in errors[0]
    assert errors[1].startswith("rank 1: rank 0 did not complete")


def test_weights_neither_staged_nor_named_fail_every_rank_at_once(tmp_path: Path):
    (tmp_path / "opt-ml-model").mkdir()  # the package files only: the weights were not staged
    for rank in (0, 1):
        bare = llm.Settings.from_env({"LOCAL_RANK": str(rank), "TENSOR_PARALLEL_DEGREE": "2"}, {})
        with pytest.raises(llm.DownloadError, match="MODEL_S3_BUCKET and MODEL_S3_PREFIX are not set: stage them"):
            llm.weights_dir(bare, {"model_dir": str(tmp_path / "opt-ml-model")},
                            barrier=lambda: pytest.fail("no rank may wait at the barrier"))


@pytest.mark.parametrize(
    ("env", "properties", "message"),
    [
        ({"MODEL_DTYPE": "int4"}, {"dtype": "fp16"}, "MODEL_DTYPE: got 'int4', allowed: int8, fp16, bf16"),
        ({"MODEL_S3_BUCKET": "b", "MODEL_S3_PREFIX": "p", "TENSOR_PARALLEL_DEGREE": "eight"}, {},
         "TENSOR_PARALLEL_DEGREE: got 'eight', expected an integer >= 1"),
        ({"MODEL_S3_BUCKET": "b", "MODEL_S3_PREFIX": "p", "TENSOR_PARALLEL_DEGREE": "0"}, {},
         "TENSOR_PARALLEL_DEGREE: got '0', expected an integer >= 1"),
        ({"MODEL_S3_BUCKET": "b", "MODEL_S3_PREFIX": "p", "LOCAL_RANK": "-1"}, {}, "LOCAL_RANK: got '-1'"),
        ({"MODEL_S3_BUCKET": "b", "MODEL_S3_PREFIX": "p"}, {"dtype": "fp8"}, "option.dtype: got 'fp8', allowed: int8, fp16, bf16"),
    ],
)
def test_settings_errors_name_the_variable(env, properties, message):
    with pytest.raises(ValueError, match=message):
        llm.Settings.from_env(env, properties)


def test_settings_defaults():
    s = llm.Settings.from_env({"MODEL_S3_BUCKET": "b", "MODEL_S3_PREFIX": "/models/opt-30b/"}, {})
    assert (s.source, s.tensor_parallel_degree, s.local_rank, str(s.download_dir), s.dtype) == (
        "s3://b/models/opt-30b/", 1, 0, "/tmp/model", "fp16")


def test_the_environment_dtype_wins_over_the_properties():
    assert llm.Settings.from_env({"MODEL_DTYPE": "int8"}, {"dtype": "fp16"}).dtype == "int8"


def test_limits_come_from_the_environment():
    assert llm.Limits.from_env({"MAX_NEW_TOKENS": "400", "MAX_BATCH_SIZE": "4"}) == llm.Limits(400, 4)
    assert llm.Limits.from_env({}) == llm.Limits(256, 4)
    with pytest.raises(ValueError, match="MAX_NEW_TOKENS: got '0', expected an integer >= 1"):
        llm.Limits.from_env({"MAX_NEW_TOKENS": "0"})


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture
def service(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def loader(_properties):  # what load_model returns once DeepSpeed has sharded the model
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)

    return llm.Service(loader, llm.Limits(max_new_tokens=30, max_batch_size=3))


def ask(service, payload) -> object:
    return service.handle(Input(json.dumps(payload) if not isinstance(payload, bytes) else payload))


def test_batched_generation_matches_one_prompt_at_a_time(service):
    prompts = ["hello world the cat", "dog", "a mat far"]
    params = {"max_new_tokens": 4}
    batched = ask(service, {"inputs": prompts, "parameters": params})
    assert batched.code == 200 and batched.properties["content-type"] == "application/json"
    singles = [ask(service, {"inputs": p, "parameters": params}).json_body()[0] for p in prompts]
    assert batched.json_body() == singles
    assert len({s["generated_text"] for s in singles}) == 3  # the tiny model tells the prompts apart
    assert all(len(s["generated_text"].split()) == 4 for s in singles)


def test_max_new_tokens_bounds_the_output(service):
    out = ask(service, {"inputs": "hello", "parameters": {"max_new_tokens": 2}}).json_body()
    assert len(out) == 1 and len(out[0]["generated_text"].split()) == 2


def test_requests_at_the_limits_are_served(service):
    out = ask(service, {"inputs": ["a", "b", "c"], "parameters": {"max_new_tokens": 30, "min_new_tokens": 30}})
    assert out.code == 200 and len(out.json_body()) == 3


def test_default_new_tokens_never_exceed_the_endpoint_limit():
    assert llm.parse_request(b'{"inputs": "hi"}', llm.Limits(max_new_tokens=100))[1]["max_new_tokens"] == 100
    assert llm.parse_request(b'{"inputs": "hi"}', llm.Limits(max_new_tokens=400))[1]["max_new_tokens"] == 256


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not valid JSON"),
        ({"prompt": "hi"}, 'expected {"inputs"'),
        ({"inputs": []}, "non-empty string or a non-empty list"),
        ({"inputs": ["ok", 3]}, "non-empty string or a non-empty list"),
        ({"inputs": ["x"] * 4}, "4 prompts, at most 3 are allowed (this endpoint's MAX_BATCH_SIZE, so that a "
         "request ends within SageMaker's 60-second invocation limit"),
        ({"inputs": "hi", "parameters": {"max_new_tokens": 31}},
         "'max_new_tokens': got 31, allowed: at most 30 (this endpoint's MAX_NEW_TOKENS"),
        ({"inputs": "hi", "parameters": {"min_new_tokens": 31}}, "'min_new_tokens': got 31, allowed: at most 30"),
        ({"inputs": "hi", "parameters": []}, '"parameters" must be an object'),
        ({"inputs": "hi", "parameters": {"max_tokens": 5}}, "unknown parameter 'max_tokens', allowed: do_sample"),
        ({"inputs": "hi", "parameters": {"max_new_tokens": 0}}, "'max_new_tokens': got 0, allowed: an integer from 1 to 30"),
        ({"inputs": "hi", "parameters": {"max_new_tokens": 5.5}}, "'max_new_tokens': got 5.5"),
        ({"inputs": "hi", "parameters": {"top_p": 1.5}}, "'top_p': got 1.5, allowed: a number above 0, at most 1"),
        ({"inputs": "hi", "parameters": {"do_sample": "yes"}}, "'do_sample': got \"yes\", allowed: true or false"),
        ({"inputs": "hi", "parameters": {"temperature": True}}, "'temperature': got true"),
    ],
)
def test_bad_requests_get_400_with_the_reason(service, payload, reason: str):
    out = ask(service, payload)
    assert out.code == 400 and reason in out.json_body()["error"]
