# Runs inside the Neuron Deep Learning Container as the Batch job's command.
# Fetches the compile package (the model_packages/stable_diffusion_compile/ tarball,
# SCRIPT_BUCKET/SCRIPT_KEY) and runs compile.py with the inputs the custom resource submitted
# (MODEL_ID, MODEL_REVISION, HEIGHT, WIDTH, DTYPE, COMPILER_ARGS, EXPORTER, UPLOAD_URL). The image
# is the one the artifacts will be served with and nothing is installed over its libraries, so
# the compile sees exactly the serving profile's versions. compile.py uploads the artifacts and
# writes manifest.json last; a non-zero exit fails the job and the stack event says why.
#
# The job must end when this script does. The Hugging Face Neuron inference image's entrypoint
# (aws/deep-learning-containers huggingface/build_artifacts/inference/neuron-entrypoint.py) runs a
# non-"serve" command and then `tail -f /dev/null`, so its container never exits on its own and a
# finished compile would hold the host until the job timeout, then end FAILED. Batch job definitions
# cannot replace an image's entrypoint, so when this script ends, a detached helper (end_entrypoint)
# stops whatever the entrypoint that started it runs next (its child processes) for a minute; the
# entrypoint then returns and the container exits with its status. When this script is PID 1 (an
# image without an entrypoint) the container ends with it and no helper is needed.
set -euo pipefail
work="$(mktemp -d)"
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet --no-cache-dir boto3
python3 -c 'import boto3, os, sys; boto3.client("s3").download_file(os.environ["SCRIPT_BUCKET"], os.environ["SCRIPT_KEY"], sys.argv[1])' "$work/package.tar.gz"
tar -xzf "$work/package.tar.gz" -C "$work"
cd "$work"
args=(--model-id "$MODEL_ID" --height "$HEIGHT" --width "$WIDTH" --dtype "$DTYPE"
      "--compiler-args=$COMPILER_ARGS" --exporter "${EXPORTER:-torch-neuronx}" --output-dir "$work/out"
      --upload-url "$UPLOAD_URL")
if [ -n "${MODEL_REVISION:-}" ]; then args+=(--revision "$MODEL_REVISION"); fi
# Weights staged in S3: nothing is fetched from the Hugging Face hub (optimum-neuron's compile cache
# lookup is also off: optimum_export.py passes disable_neuron_cache=True).
case "$MODEL_ID" in s3://*) export HF_HUB_OFFLINE=1 ;; esac
cat > "$work/end_entrypoint.py" <<'PYTHON'
import os, signal, sys, time
script, entrypoint = int(sys.argv[1]), int(sys.argv[2])
def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()  # state, parent, ...
    except OSError:
        return None
def running(pid):
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"
while running(script):
    time.sleep(1)
deadline = time.monotonic() + 60
while running(entrypoint) and time.monotonic() < deadline:
    for name in os.listdir("/proc"):
        fields = stat(name) if name.isdigit() and int(name) != os.getpid() else None
        if fields and fields[0] != "Z" and int(fields[1]) == entrypoint:
            try:
                os.kill(int(name), signal.SIGTERM)
            except OSError:
                pass
    time.sleep(0.5)
PYTHON
if [ "$$" != 1 ]; then
  python3 "$work/end_entrypoint.py" "$$" "$PPID" </dev/null >/dev/null 2>&1 &
fi
echo "compiling ${MODEL_ID} ${HEIGHT}x${WIDTH} ${DTYPE} into ${UPLOAD_URL}"
status=0
python3 compile.py "${args[@]}" || status=$?
exit "$status"
