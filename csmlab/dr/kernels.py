"""Whether the compiled (numba) CPU kernels are available, and numba's thread count.

The kernels (``csmlab.dr.kernels_*``) are compiled on first use and cached on disk
(``@njit(cache=True)``): by default in ``csmlab/dr/__pycache__`` next to their source, so
every later process (each notebook of ``make course`` runs in a fresh kernel) loads them
instead of compiling again; a kernel is recompiled only when its source file's content
changes. When that folder is not writable (a read-only install), numba falls back on its
own to the user's cache folder (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba`` on Linux,
``~/Library/Caches/numba`` on macOS, ``%LOCALAPPDATA%\\numba`` on Windows), and
``NUMBA_CACHE_DIR=/some/writable/dir`` chooses the folder explicitly. Set it *before*
``csmlab.dr`` is first used. ``benchmarks/raster.py`` prints the compile time (empty cache)
and the load time (cached).

Threads: the kernels run in numba's own thread pool, not torch's, and the library
changes neither. Choose numba's count with the environment variable
``NUMBA_NUM_THREADS`` (before the first import) or ``numba.set_num_threads(n)`` at run
time (at most the startup value); ``numba.get_num_threads()`` reads it.

The compiled path is the default for CPU tensors. ``CSMLAB_DR_NUMBA=0`` (or the older
``CSMLAB_DR_NO_NUMBA=1``) switches it off: the PyTorch twin then serves CPU tensors, as it
does when numba is not installed.
"""

from __future__ import annotations

import importlib.util
import os


def switched_off() -> bool:
    """True when the user switched the compiled path off: ``CSMLAB_DR_NUMBA=0`` or ``CSMLAB_DR_NO_NUMBA=1``."""
    return (os.environ.get("CSMLAB_DR_NUMBA", "").strip().lower() in ("0", "false", "no", "off")
            or os.environ.get("CSMLAB_DR_NO_NUMBA", "") not in ("", "0"))


def numba_available() -> bool:
    """True when numba imports and the compiled path is not switched off (:func:`switched_off`)."""
    return not switched_off() and importlib.util.find_spec("numba") is not None


def numba_enabled() -> bool:
    """True when the compiled kernels serve CPU tensors (the default): numba imports and the user did not
    switch them off. Kept next to :func:`numba_available` (same answer) so callers can say which they mean."""
    return numba_available()


def num_threads() -> int:
    """numba's current thread count (1 when numba is missing)."""
    if not numba_available():
        return 1
    import numba

    return numba.get_num_threads()
