"""pytest setup shared by tests/ and examples/: the `gpu`, `tensorrt` and `rtx` markers skip
cleanly, with the reason, where there is no CUDA device, no TensorRT or no TensorRT-RTX."""
import functools

import pytest


@functools.lru_cache(maxsize=None)
def _cuda_devices() -> int:
    try:
        from plugkit import _host
    except ImportError:
        return 0
    return _host.cuda_device_count()


@functools.lru_cache(maxsize=None)
def _backend_missing(backend: str) -> str | None:
    """Why engines of ``backend`` (tensorrt, rtx) cannot be built here; None when they can."""
    try:
        from plugkit.engine import TensorRTMissingError, import_backend
    except ImportError as exc:
        return str(exc)
    try:
        import_backend(backend)  # for rtx this also prepares TensorRT-RTX's libraries
    except TensorRTMissingError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu" in item.keywords and not _cuda_devices():
            item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device visible"))
        for backend in ("tensorrt", "rtx"):
            if backend in item.keywords and _backend_missing(backend):
                item.add_marker(pytest.mark.skip(reason=f"{backend}: {_backend_missing(backend)}"))
