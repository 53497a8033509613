"""The local multi-model endpoint the load test is measured against: the real packages
behind SageMaker Runtime's wire format, and the clients' cold-start retry against it."""
from __future__ import annotations

import threading

import boto3
import pytest
from botocore.config import Config

from ml_tools.invoke_mme import ColdStartRetry, predict, predict_with_retry
from ml_tools.loadtest.local_endpoint import build_store, make_server
from ml_tools.runtime import EndpointError


@pytest.fixture
def endpoint():
    store = build_store(3, max_loaded=2, load_delay_s=0.3)
    server = make_server(store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        aws_access_key_id="x", aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}),
    )
    yield client, store
    server.shutdown()
    server.server_close()


def test_a_published_package_answers_through_the_runtime_api(endpoint):
    client, store = endpoint
    assert predict(client, "mme", 2, [[1.0], [3.0]]) == pytest.approx([3.0, 7.0], abs=0.05)
    assert store.loads == 1
    predict(client, "mme", 2, [[1.0]])
    assert store.loads == 1  # loaded once, then served from memory


def test_the_handlers_400_reaches_the_client_with_its_reason(endpoint):
    client, _ = endpoint
    with pytest.raises(EndpointError, match=r"ModelError.*the model answered 400: .*the model expects 1"):
        predict(client, "mme", 0, [[1.0, 2.0]])


def test_least_recently_used_models_are_unloaded(endpoint):
    client, store = endpoint
    for index in (0, 1, 2, 0):
        predict(client, "mme", index, [[1.0]])
    assert list(store.loaded) == ["sklearn-2.tar.gz", "sklearn-0.tar.gz"] and store.loads == 4


def load_in_background(client, index: int) -> threading.Thread:
    import time

    thread = threading.Thread(target=predict, args=(client, "mme", index, [[1.0]]))
    thread.start()
    time.sleep(0.1)  # the request is now loading the model (0.3 s)
    return thread


def test_a_request_during_a_load_is_told_to_wait(endpoint):
    client, _ = endpoint
    loading = load_in_background(client, 1)
    with pytest.raises(EndpointError, match="ModelNotReadyException"):
        predict(client, "mme", 1, [[1.0]])
    loading.join()


def test_the_client_waits_out_a_load_with_backoff(endpoint):
    client, _ = endpoint
    loading = load_in_background(client, 2)
    answer = predict_with_retry(client, "mme", 2, [[2.0]], retry=ColdStartRetry(base_delay_s=0.2))
    loading.join()
    assert answer.waited_for_load and answer.attempts >= 2
    assert answer.predictions == pytest.approx([5.0], abs=0.05)
