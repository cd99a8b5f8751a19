"""The exceptions plugkit raises for errors a user can cause.

Each message names the thing at fault and, where there is one, the fix. The
CLI prints these without a traceback (set PLUGKIT_DEBUG=1 to see it).
"""


class PlugkitError(Exception):
    """Base of every error a user can cause and fix."""


class SchemaError(PlugkitError, ValueError):
    """An op schema or attribute value that does not fit the schema."""


class UnknownOpError(PlugkitError, KeyError):
    """An op name that no ``op.py`` declares."""

    def __str__(self):  # KeyError would quote its message
        return str(self.args[0]) if self.args else ""


class OnnxModelError(PlugkitError, ValueError):
    """A file that is not a readable, valid ONNX model, or a model plugkit cannot edit."""


class OpsetConflictError(PlugkitError, ValueError):
    """A model whose opset imports clash with what plugkit needs to add."""


class ExprError(PlugkitError, ValueError):
    """An --expr that is not a valid elementwise expression."""


class ScaffoldError(PlugkitError, ValueError):
    """A `plugkit new` request that cannot produce a working plugin; the message says why."""


class ShapeSpecError(PlugkitError, ValueError):
    """A shape or shape spec that cannot be read, or that does not fit the model."""


class PrecisionError(PlugkitError, ValueError):
    """Precision flags that cannot be honoured together."""


class OutputExistsError(PlugkitError, FileExistsError):
    """An output file that exists and may not be overwritten (``force=False``).
    The CLI adds how to overwrite it (``--force``)."""


# --- plugin libraries --------------------------------------------------------

class PluginLibraryError(PlugkitError):
    """A missing file, a file that is not a plugin library, or no such plugin in it."""


class PluginError(PlugkitError):
    """A plugin call failed; the message carries what the plugin logged."""


class HostUnavailableError(PlugkitError):
    """The plugin host (plugkit._host) cannot be imported, so creators cannot be read."""


class DoctorError(PlugkitError):
    """Plugin nodes of a model that no loaded library provides."""

    def __init__(self, report):  # a plugkit.doctor.DoctorReport
        self.report = report
        super().__init__(report.format())


# --- engines -----------------------------------------------------------------

class EngineError(PlugkitError):
    """Building, loading or running an engine failed for a reason a user can fix."""


class TensorRTMissingError(EngineError, ImportError):
    """The tensorrt package is not installed (or is a stub)."""


class EngineFileError(EngineError):
    """An engine file that is missing, empty, truncated or not an engine."""


class EngineMismatchError(EngineError):
    """An engine built by another TensorRT version or for another GPU."""


class InputError(EngineError, ValueError):
    """Inputs that do not fit the engine: names, dtypes or shapes."""
