# tftrt-build's GPU conversion image: TensorFlow 2.17.1 (the last release with TF-TRT) with
# TensorRT 8.6.1, the version that TensorFlow 2.17 is linked against and that the
# tensorflow/serving:2.15.1-gpu ... 2.17.1-gpu images carry.
#
#   docker build -f docker/gpu.Dockerfile -t tftrt-build/gpu:2.17.1-trt8.6.1 .
#   docker run --rm --gpus all -v "$PWD:/work" -w /work tftrt-build/gpu:2.17.1-trt8.6.1 \
#       tftrt-build profile=fp16 target.gpus.compute_capability=8.6
#   docker run --rm --gpus all -v "$PWD:/work" -w /work tftrt-build/gpu:2.17.1-trt8.6.1 \
#       pytest -m gpu
#
# TensorFlow dlopens exactly libnvinfer.so.8.6.1 from the system library folders, which is
# where NVIDIA's apt packages put it; CUDA and cuDNN come from TensorFlow's [and-cuda] wheels,
# and the driver from the NVIDIA container runtime.
FROM ubuntu:22.04

ARG DEBIAN_FRONTEND=noninteractive
ARG TENSORRT=8.6.1.6-1+cuda12.0
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl python3 python3-pip \
    && curl -fsSL -o /tmp/cuda-keyring.deb \
        https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/cuda-keyring_1.1-1_all.deb \
    && dpkg -i /tmp/cuda-keyring.deb \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        "libnvinfer8=${TENSORRT}" "libnvinfer-plugin8=${TENSORRT}" \
    && apt-mark hold libnvinfer8 libnvinfer-plugin8 \
    && rm -rf /var/lib/apt/lists/* /tmp/cuda-keyring.deb

COPY . /opt/tftrt-build
RUN python3 -m pip install --no-cache-dir -c /opt/tftrt-build/constraints.txt \
        "tensorflow[and-cuda]==2.17.1" "/opt/tftrt-build[test]"
