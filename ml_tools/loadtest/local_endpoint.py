"""A local stand-in for a multi-model endpoint, to run the load test without AWS.

    $(python -m runtime_profiles.env python multi_model/current) -m ml_tools.loadtest.local_endpoint \\
        --port 8765 --model-count 200 --max-loaded 50
    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8765 python -m ml_tools.loadtest.run_patterns ...

It answers SageMaker Runtime's ``InvokeEndpoint`` (``POST /endpoints/<name>/invocations``
with ``X-Amzn-SageMaker-Target-Model``) on 127.0.0.1 only, with the packages
``publish-models`` builds, served by the package's own ``model.py`` through the
``djl_python`` stand-in of the contract tests. Like a multi-model endpoint it loads a
model on its first request (unpack, import the handler, load the skops file: the real
local cost, plus ``--load-delay-ms``), keeps at most ``--max-loaded`` models (least
recently used go first), answers ``ModelNotReadyException`` (429) to requests for a
model another request is loading, and turns a handler's 4xx into ``ModelError`` with
the handler's answer. One process on one machine: its figures compare traffic patterns
and show the clients' cold-start handling, not what an ``ml.c5d.18xlarge`` sustains.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import json
import re
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "contract_tests" / "multi_model" / "djl_standin"
_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")


class NotReady(Exception):
    """Another request is loading this model."""


class ModelStore:
    """Packages by key, loaded on demand into at most ``max_loaded`` handler modules."""

    def __init__(self, packages: dict[str, bytes], *, max_loaded: int, load_delay_s: float = 0.0) -> None:
        self.packages = packages
        self.max_loaded = max_loaded
        self.load_delay_s = load_delay_s
        self.loaded: collections.OrderedDict[str, ModuleType] = collections.OrderedDict()
        self.loading: set[str] = set()
        self.lock = threading.Lock()
        self.loads = 0
        self._work = Path(tempfile.mkdtemp(prefix="local-mme-"))

    def handler(self, key: str) -> ModuleType:
        with self.lock:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
            if key in self.loading:
                raise NotReady(key)
            self.loading.add(key)
        try:
            module = self._load(key)
        finally:
            with self.lock:
                self.loading.discard(key)
        with self.lock:
            self.loaded[key] = module
            self.loads += 1
            while len(self.loaded) > self.max_loaded:
                self.loaded.popitem(last=False)
        return module

    def _load(self, key: str) -> ModuleType:
        from djl_python import Input

        folder = self._work / f"{key}-{uuid.uuid4().hex[:8]}"
        with tarfile.open(fileobj=io.BytesIO(self.packages[key])) as tar:
            tar.extractall(folder, filter="data")
        spec = importlib.util.spec_from_file_location(f"_local_mme_{uuid.uuid4().hex}", folder / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.handle(Input.load_call(str(folder)))
        time.sleep(self.load_delay_s)
        return module


def make_server(store: ModelStore, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: a load test sends thousands
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, **fields: Any) -> None:
            body = json.dumps({"message": message, **fields}).encode()
            self._send(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            from djl_python import Input

            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            key = self.headers.get("X-Amzn-SageMaker-Target-Model")
            if not _PATH.match(self.path) or key is None:
                return self._error(400, "ValidationError", "POST /endpoints/<name>/invocations with a target model")
            if key not in store.packages:
                return self._error(400, "ValidationError", f"model {key} is not under the endpoint's prefix")
            try:
                handler = store.handler(key)
            except NotReady:
                return self._error(429, "ModelNotReadyException", f"model {key} is still loading")
            out = handler.handle(Input.request(body, self.headers.get("Content-Type", "application/json")))
            answer = b"".join(bytes(value) for _key, value in out.content)
            if out.code >= 400:
                return self._error(424, "ModelError", f"Received client error ({out.code}) from primary",
                                   OriginalStatusCode=out.code, OriginalMessage=answer.decode())
            self._send(200, answer, {"Content-Type": out.properties.get("content-type", "application/json"),
                                     "x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 refuses connections under a load test
        daemon_threads = True

    return Server(("127.0.0.1", port), Handler)


def build_store(model_count: int, *, max_loaded: int, load_delay_s: float = 0.0) -> ModelStore:
    """Real packages, as ``publish-models`` builds them with the configuration's defaults."""
    from config.multi_model import MultiModelConfig
    from ml_tools.publish_models import build_packages

    if str(STANDIN) not in sys.path:
        sys.path.insert(0, str(STANDIN))
    packages = build_packages(model_count, workers=MultiModelConfig().serving_properties())
    return ModelStore({p.key: p.data for p in packages}, max_loaded=max_loaded, load_delay_s=load_delay_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_tools.loadtest.local_endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model-count", type=int, default=200)
    parser.add_argument("--max-loaded", type=int, default=50, help="models kept loaded at once (default 50)")
    parser.add_argument("--load-delay-ms", type=float, default=0.0, help="added to each model load (default 0)")
    args = parser.parse_args(argv)
    store = build_store(args.model_count, max_loaded=args.max_loaded, load_delay_s=args.load_delay_ms / 1000)
    server = make_server(store, args.port)
    print(f"local multi-model endpoint on http://127.0.0.1:{server.server_address[1]} "
          f"({args.model_count} models, at most {args.max_loaded} loaded)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"models loaded: {store.loads}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
