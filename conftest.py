"""pytest setup shared by tests/ and examples/: the `gpu` and `tensorrt` markers skip
cleanly, with the reason, where there is no CUDA device or no TensorRT."""
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
def _tensorrt_missing() -> str | None:
    try:
        from plugkit.engine import TensorRTMissingError, import_tensorrt
    except ImportError as exc:
        return str(exc)
    try:
        import_tensorrt()
    except TensorRTMissingError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu" in item.keywords and not _cuda_devices():
            item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device visible"))
        if "tensorrt" in item.keywords and _tensorrt_missing():
            item.add_marker(pytest.mark.skip(reason=f"tensorrt: {_tensorrt_missing()}"))
