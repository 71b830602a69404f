"""Operations that import TensorFlow. Only ``tftrt_build.runner`` (a child process) loads these."""
