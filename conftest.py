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


@functools.lru_cache(maxsize=None)
def _rtx_missing() -> str | None:
    try:
        from plugkit.engine import TensorRTMissingError, import_backend
    except ImportError as exc:
        return str(exc)
    try:
        import_backend("rtx")  # first, so that plugkit prepares TensorRT-RTX's libraries
    except TensorRTMissingError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "gpu" in item.keywords and not _cuda_devices():
            item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device visible"))
        if "tensorrt" in item.keywords and _tensorrt_missing():
            item.add_marker(pytest.mark.skip(reason=f"tensorrt: {_tensorrt_missing()}"))
        if "rtx" in item.keywords and _rtx_missing():
            item.add_marker(pytest.mark.skip(reason=f"rtx: {_rtx_missing()}"))
