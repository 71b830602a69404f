# A CPU image for tftrt-build's own tests of the Docker executor: Debian bookworm (imported
# from a debootstrap root file system, as no registry is reachable in CI) with Python 3.11,
# TensorFlow 2.17.1 and tftrt-build installed from wheels prepared outside the build, so the
# build needs no network. Made by docker/build-test-image.sh.
ARG BASE=tftrt-build/debian:bookworm
FROM ${BASE}
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /tmp/wheels tftrt-build \
    && rm -rf /tmp/wheels
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/tmp
