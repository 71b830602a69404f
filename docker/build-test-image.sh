#!/usr/bin/env bash
# Build tftrt-build's CPU test image on the Docker engine DOCKER_HOST names, offline except for
# Debian's package mirror (debootstrap) and the Python package index (wheels):
#   docker/build-test-image.sh [IMAGE [STAND_IN]]
# IMAGE (default tftrt-build/test-cpu:2.17.1) has TensorFlow and tftrt-build; STAND_IN (default
# tftrt-build/tfserving-double:2.17.1) adds the TF Serving test double as tensorflow_model_server.
# Needs root (debootstrap) and a Python with pip. Skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-tftrt-build/test-cpu:2.17.1}
base=tftrt-build/debian:bookworm
python=${PYTHON:-python3}
work=$(mktemp -d /tmp/tftrt-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "+ debootstrap bookworm (Python 3.11) -> $base"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; exit 1; }
    tar -C "$work/rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$work/rootfs"
fi

echo "+ wheels for tftrt-build and its dependencies (constraints.txt)"
mkdir -p "$work/context/wheels"
"$python" -m pip wheel --quiet -c constraints.txt -w "$work/context/wheels" .
cp docker/test-cpu.Dockerfile "$work/context/Dockerfile"

echo "+ docker build -> $image"
docker build --quiet --build-arg "BASE=$base" -t "$image" "$work/context" >/dev/null
docker image inspect --format '{{.Id}}' "$image"

# A stand-in for the TF Serving image: the test double of tensorflow_model_server
# (tests/doubles/tfserving.py) installed under that name, for tftrt-deploy's tests.
double=${2:-tftrt-build/tfserving-double:2.17.1}
echo "+ docker build -> $double"
mkdir -p "$work/double"
cp tests/doubles/tfserving.py "$work/double/tfserving.py"
cat >"$work/double/Dockerfile" <<DOCKERFILE
FROM $image
COPY tfserving.py /opt/tfserving-double/tfserving.py
RUN printf '#!/bin/sh\nexec /opt/venv/bin/python /opt/tfserving-double/tfserving.py "\$@"\n' \
        >/usr/bin/tensorflow_model_server \
    && chmod 755 /usr/bin/tensorflow_model_server
DOCKERFILE
docker build --quiet -t "$double" "$work/double" >/dev/null
docker image inspect --format '{{.Id}}' "$double"
