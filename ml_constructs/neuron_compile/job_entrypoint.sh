# Runs inside the Neuron Deep Learning Container as the Batch job's command.
# Fetches the compile package (the model_packages/stable_diffusion_compile/ tarball,
# SCRIPT_BUCKET/SCRIPT_KEY) and runs compile.py with the inputs the custom resource submitted
# (MODEL_ID, MODEL_REVISION, HEIGHT, WIDTH, DTYPE, COMPILER_ARGS, EXPORTER, UPLOAD_URL). The image
# is the one the artifacts will be served with and nothing is installed over its libraries, so
# the compile sees exactly the serving profile's versions. compile.py uploads the artifacts and
# writes manifest.json last; a non-zero exit fails the job and the stack event says why.
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
echo "compiling ${MODEL_ID} ${HEIGHT}x${WIDTH} ${DTYPE} into ${UPLOAD_URL}"
exec python3 compile.py "${args[@]}"
