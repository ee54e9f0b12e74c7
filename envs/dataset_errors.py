"""The errors dataset loading raises, in one place so that a CLI catches `DatasetError` and prints one line.

Each message is one line saying what was wrong and what to do; none needs a traceback.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Base of every dataset-loading error: print str(e) and exit."""


class InvalidDatasetIdError(DatasetError, ValueError):
    """The id is not of the form namespace/name-vN (or builtin/...)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset id is neither local, nor built in, nor (when asked) downloadable."""


class DatasetDownloadError(DatasetError, RuntimeError):
    """The download could not run (no network, no remote client installed)."""


class DatasetFormatError(DatasetError, ValueError):
    """The dataset is present but cannot be used: empty, zero-length episodes, images, ..."""
