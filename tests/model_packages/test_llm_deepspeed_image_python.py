"""The seed handler under the seed image's own Python (3.8, runtime_profiles/llm/seed): it must
import without boto3 and answer its limits there, not only under the development Python.

Its model code (torch 1.12.1+cu113, DeepSpeed 0.7.3) cannot be installed here, so this covers
what runs before and around the model: module import, request parsing and limits, where the
weights come from, and the failure without boto3."""
from __future__ import annotations

import json
import subprocess

from runtime_profiles import load_profile
from runtime_profiles.env import interpreter_for
from tests.model_packages.conftest import PACKAGES, REPO

SCRIPT = r"""
import importlib.util, json, sys, tempfile
sys.path.insert(0, sys.argv[2])  # the djl_python stand-in; -I keeps the development site-packages out
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
handler = importlib.util.module_from_spec(spec)
sys.modules["handler"] = handler
spec.loader.exec_module(handler)
out = {"python": "%d.%d" % sys.version_info[:2], "boto3": "boto3" in sys.modules}
limits = handler.Limits.from_env({"MAX_NEW_TOKENS": "400", "MAX_BATCH_SIZE": "4"})
out["parsed"] = handler.parse_request(b'{"inputs": ["a", "b"], "parameters": {"max_new_tokens": 400}}', limits)
try:
    handler.parse_request(b'{"inputs": "a", "parameters": {"max_new_tokens": 401}}', limits)
except handler.BadRequest as err:
    out["refused"] = str(err)
try:
    handler.weights_dir(handler.Settings.from_env({}, {}), {"model_dir": tempfile.mkdtemp()}, barrier=lambda: None,
                        client_factory=handler.s3_client)
except handler.DownloadError as err:
    out["unstaged"] = str(err)
try:
    handler.s3_client()
except handler.DownloadError as err:
    out["no_boto3"] = str(err)
print(json.dumps(out))
"""


def test_the_handler_runs_its_request_logic_on_the_images_python():
    python = interpreter_for(load_profile("llm", "seed").python)
    result = subprocess.run(
        [python, "-I", "-c", SCRIPT, str(PACKAGES / "llm_deepspeed" / "model.py"),
         str(REPO / "tests" / "model_packages" / "djl_stub")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["python"] == "3.8" and out["boto3"] is False
    assert out["parsed"] == [["a", "b"], {"max_new_tokens": 400, "do_sample": False}]
    assert out["refused"].startswith("parameter 'max_new_tokens': got 401, allowed: at most 400")
    assert "MODEL_S3_BUCKET and MODEL_S3_PREFIX are not set: stage them" in out["unstaged"]
    assert "No module named 'boto3'" in out["no_boto3"]
