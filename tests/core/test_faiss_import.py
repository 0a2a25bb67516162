"""faiss's loader noise: muted under INFO logging, still there under DEBUG, errors still raise."""

import logging
import subprocess
import sys

import pytest

from dynamix.relabel.faiss_import import LOADER_LOGGER, import_faiss


def _import_under_logging(level: str, module: str = "dynamix.relabel") -> subprocess.CompletedProcess:
    """A fresh interpreter (faiss not yet imported) with the CLI's root logging at ``level``."""
    code = f"import logging; logging.basicConfig(level=logging.{level}); import {module}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)


def test_relabel_import_prints_nothing_under_info_logging():
    done = _import_under_logging("INFO")
    assert done.stderr == ""
    assert done.stdout == ""


def test_loader_lines_still_shown_under_debug_logging():
    done = _import_under_logging("DEBUG")
    assert f"{LOADER_LOGGER}:" in done.stderr  # proves the INFO run above had lines to hide


def test_plain_import_faiss_would_be_noisy_under_info_logging():
    """The control: without the helper the loader does log at INFO (else the fix is moot)."""
    done = _import_under_logging("INFO", module="faiss")
    assert f"INFO:{LOADER_LOGGER}:" in done.stderr


def test_loader_logger_level_restored():
    """The mute lasts for the import only: the logger is left as the caller had set it."""
    logger = logging.getLogger(LOADER_LOGGER)
    saved = logger.level
    try:
        logger.setLevel(logging.NOTSET)  # inherits the root's WARNING: muted, then restored
        import_faiss()
        assert logger.level == logging.NOTSET
    finally:
        logger.setLevel(saved)


def test_a_faiss_that_cannot_load_still_raises(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    logger = logging.getLogger(LOADER_LOGGER)
    saved = logger.level
    with pytest.raises(ImportError):
        import_faiss()
    assert logger.level == saved
