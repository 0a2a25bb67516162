"""faiss, imported without its loader's noise: the one place the project imports faiss.

On import, ``faiss/loader.py`` tries the AVX512-SPR, AVX512 and AVX2 builds in turn and logs
every build the wheel does not ship as ``Could not load library ... ModuleNotFoundError(...)``
at INFO on the ``faiss.loader`` logger, then loads the generic build. Under the CLI's INFO
logging that reads like a failure on every run although nothing is wrong. The import here
raises that logger to WARNING for the duration of the import only, so:

* a faiss that cannot load at all still raises ``ImportError`` (nothing is caught);
* the loader's warnings, if any, still show;
* with ``--log-level DEBUG`` (the logger's effective level below INFO) nothing is hidden.
"""

from __future__ import annotations

import logging
from types import ModuleType

LOADER_LOGGER = "faiss.loader"


def import_faiss() -> ModuleType:
    """``import faiss`` with the loader's INFO lines muted unless DEBUG logging is on."""
    loader_log = logging.getLogger(LOADER_LOGGER)
    saved = loader_log.level
    if loader_log.getEffectiveLevel() >= logging.INFO:
        loader_log.setLevel(logging.WARNING)
    try:
        import faiss
    finally:
        loader_log.setLevel(saved)
    return faiss


faiss = import_faiss()
