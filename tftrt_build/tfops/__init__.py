"""Operations that import TensorFlow. Only ``tftrt_build.runner`` (a child process) loads these."""


class CapabilityMissing(Exception):
    """Raised by an operation when this machine lacks what it needs (GPU, TensorRT).

    It lives here, not in the runner: the runner runs as ``__main__``, where a class of its own
    would not be the one operations raise.
    """
