#!/usr/bin/env bash
# Prepare, HERE, what scripts/gpu_check.sh needs on the lent GPU machine (the device tool's `run`), into
# the ignored folder .gpu/ (≈ 40 MB, under the 64 MiB a call may carry with the working tree):
#   .gpu/site.zip   the Python packages the pipeline and the worker's code path need that the machine's
#                   image lacks (facexlib, MediaPipe's runtime ai-edge-litert, pydantic, pydantic-settings,
#                   celery, kornia, ...), as cp312 manylinux wheels unpacked into one folder and zipped;
#                   ai-edge-litert's WebGPU accelerator, vendor compiler plugins and tools (≈ 35 MB the
#                   interpreter never loads) are left out;
#   .gpu/weights/   the third-party weights the pipeline reads (detector, landmark mesh, segmenter, identity),
#                   copied from WEIGHTS_DIR (never committed);
#   .gpu/faces/     the photos the benchmarks and the CUDA tests read, copied from FACES_DIR (and the
#                   astronaut of scikit-image, which the CUDA tests use and the machine lacks).
# Versions are this checkout's (.venv), so the machine runs what the tests here ran.
#
#   scripts/gpu_prepare.sh && du -sh .gpu
# then the device call in docs/operations.md ("GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WEIGHTS=${WEIGHTS_DIR:-../shared/weights}
FACES=${FACES_DIR:-../shared/faces}
# the machine's image already has torch, torchvision, numpy, opencv, scipy, onnxruntime, safetensors,
# prometheus-client, pyyaml, click, pillow, tqdm, numba, protobuf, flatbuffers, ml-dtypes, pytest
PACKAGES=(facexlib filterpy ai-edge-litert backports.strenum pydantic pydantic-core annotated-types
          typing-inspection pydantic-settings python-dotenv celery kombu billiard vine amqp tzlocal
          click-didyoumean click-plugins click-repl prompt-toolkit wcwidth kornia kornia-rs python-dateutil six
          typing-extensions)

mkdir -p .gpu
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pins=()
for name in "${PACKAGES[@]}"; do
  version=$($PY -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}' || true)
  [ -n "$version" ] || { echo "gpu_prepare: $name is not installed in this checkout's venv" >&2; exit 2; }
  pins+=("$name==$version")
done
platforms=(--platform manylinux2014_x86_64)
for n in 17 24 27 28 31 34 35 39; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$stage/wheels" "${pins[@]}"
mkdir -p "$stage/site"
for whl in "$stage"/wheels/*.whl; do
  python3 -m zipfile -e "$whl" "$stage/site"
done
rm -rf "$stage"/site/ai_edge_litert/{libLiteRtWebGpuAccelerator.so,libLiteRt.so,tools/apply_plugin_main,vendors}
rm -f .gpu/site.zip
(cd "$stage/site" && python3 -m zipfile -c "$OLDPWD/.gpu/site.zip" .)

mkdir -p .gpu/weights/facexlib .gpu/weights/landmarks .gpu/weights/segmentation .gpu/weights/identity \
  .gpu/weights/metrics
cp "$WEIGHTS"/metrics/niqe_pris_params.npz .gpu/weights/metrics/  # fidelity=auto reads each input's NIQE
cp "$WEIGHTS"/facexlib/detection_mobilenet0.25_Final.pth .gpu/weights/facexlib/
cp "$WEIGHTS"/landmarks/face_landmarker.task .gpu/weights/landmarks/
cp "$WEIGHTS"/segmentation/selfie_segmentation.tflite .gpu/weights/segmentation/
cp "$WEIGHTS"/identity/MobileFaceNet.onnx "$WEIGHTS"/identity/MobileFaceNet.onnx.data \
   "$WEIGHTS"/identity/mobilefacenet.pt .gpu/weights/identity/
mkdir -p .gpu/faces/wild/whole
for photo in gpen_selfie_2020-12-17_185036.jpg gpen_Solvay_conference_1927.png codeformer_05.jpg; do
  cp "$FACES/wild/whole/$photo" .gpu/faces/wild/whole/
done
# the CUDA tests' photo (scikit-image's astronaut, public domain: the machine has no scikit-image)
$PY -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('.gpu/faces/astronaut.png')"
chmod -R u+w .gpu
du -sh .gpu/site.zip .gpu/weights .gpu/faces
