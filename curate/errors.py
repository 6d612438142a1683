"""The exception tree: every error curate raises on purpose is a CurateError."""


class CurateError(Exception):
    """Base of every error curate raises on purpose; the CLI prints it as one line."""


class RecipeError(CurateError):
    """A recipe, a --set override or a stage config is invalid."""


class SourceError(CurateError):
    """Input data cannot be read; the message names the file, row and field."""


class BackendError(CurateError):
    """A teacher backend cannot be reached or configured."""


class VerifyError(CurateError):
    """A verifier cannot be set up (never raised for a model's bad output)."""


class ReviewError(CurateError):
    """The review service failed or returned something unexpected."""


class PublishError(CurateError):
    """Writing or uploading a dataset failed."""


class StoreError(CurateError):
    """A run directory is unusable or inconsistent."""


class CurateWarning(UserWarning):
    """Something looks wrong but work can go on (an unset key variable, an unlisted model)."""


class LoopError(CurateError):
    """A self-improvement loop cannot go on (training failed, a server did not start)."""
