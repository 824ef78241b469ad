"""Errors a user can cause. Each message names the bad value and the fix; only app/ turns
them into one line and an exit code."""


class RagError(Exception):
    """Base class for user-facing errors."""


class ConfigError(RagError):
    pass


class IndexError_(RagError):
    """The index is missing, empty or incompatible."""


class EmbeddingMismatchError(IndexError_):
    pass


class StoreUnavailableError(RagError):
    pass


class LLMUnavailableError(RagError):
    pass


class ModelNotFoundError(LLMUnavailableError):
    pass


class ContextTooLongError(LLMUnavailableError):
    """The prompt does not fit the model's context window (generation retries with fewer passages)."""


class QueryError(RagError):
    """A question that cannot be searched: empty, or a number of passages below 1."""


class LoaderError(RagError):
    """A file could not be read; the message says why."""


class RankerError(RagError):
    """The learning-to-rank model is missing a file, or was trained for other features or another embedder."""


class IndexBusyError(RagError):
    """Another process (or the UI's worker) is writing the index; the message names it."""


class SqlError(RagError):
    """A model-written SQL query was refused (not a single read-only SELECT), failed in SQLite,
    or ran past `sql.timeout_s`; the message is SQLite's own (it goes back to the model once)."""
