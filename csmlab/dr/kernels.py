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
changes neither setting. Choose numba's count with the environment variable
``NUMBA_NUM_THREADS`` (before the first import) or ``numba.set_num_threads(n)`` at run
time (at most the startup value); ``numba.get_num_threads()`` reads it. That count is an
upper bound: a call uses one thread per ``WORK_PER_THREAD`` pixels (or triangles), so small
images run on one thread. Waking a pool costs more than small images take: on a busy
2-core machine, a 4-image 64 x 64 rasterize + antialias step took 12.6 ms of CPU with 2
threads and 1.5 ms with one (the idle OpenMP workers spin, and a region waits for its
slowest thread). Those small calls go to serial builds of the kernels, which never start
numba's pool; larger ones lower the count for the call only and restore it (and torch's: starting
numba's OpenMP pool resets torch's thread count, see :func:`threads_for`).

Buffers: the image-sized outputs (``rast``, ``rast_db``, ``interpolate``'s and ``antialias``'s
images and their gradients) and the kernels' scratch (setup records, owner ids, hit lists) come
from a small per-thread pool (:func:`scratch`, :func:`pooled_tensor`): the last array of each
kind is handed out again once nothing holds it any more (not the caller, not a view, not a live
autograd graph), because a fresh array of megabytes costs a page fault per 4 KiB on every call.
The pool keeps one array per kind (at most 64 MiB each) alive between calls.

The compiled path is the default for CPU tensors. ``CSMLAB_DR_NUMBA=0`` (or the older
``CSMLAB_DR_NO_NUMBA=1``) switches it off: the PyTorch twin then serves CPU tensors, as it
does when numba is not installed.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import sys
import threading
from contextlib import contextmanager

import numpy as np

WORK_PER_THREAD = 1 << 18   # pixels (or triangles) per numba thread; below 2x this a call runs serially


def switched_off() -> bool:
    """True when the user switched the compiled path off: ``CSMLAB_DR_NUMBA=0`` or ``CSMLAB_DR_NO_NUMBA=1``."""
    return (os.environ.get("CSMLAB_DR_NUMBA", "").strip().lower() in ("0", "false", "no", "off")
            or os.environ.get("CSMLAB_DR_NO_NUMBA", "") not in ("", "0"))


@functools.cache
def _numba_installed() -> bool:
    # Asked once per process: find_spec walks sys.path (~0.1 ms), and every op asks on every call.
    return importlib.util.find_spec("numba") is not None


def numba_available() -> bool:
    """True when numba imports and the compiled path is not switched off (:func:`switched_off`)."""
    return not switched_off() and _numba_installed()


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


@contextmanager
def threads_for(work: int):
    """Yield the numba thread count for a kernel call of ``work`` pixels (or triangles): one per
    ``WORK_PER_THREAD``, at most numba's current count. 1 means: call the ``*_serial`` kernels, which
    never start numba's thread pool. Otherwise the count is set for the call and restored after it.

    Starting numba's OpenMP pool also resets the thread count of torch, which shares the same
    ``libgomp`` (``torch.set_num_threads(1)``, then ``numba.get_num_threads()`` gives torch 2 threads);
    torch's count is therefore put back as well. The bound is read from ``numba.config`` so that
    small calls do not start the pool at all."""
    import numba

    wanted = max(1, min(numba.config.NUMBA_NUM_THREADS, int(work) // WORK_PER_THREAD))
    if wanted == 1:
        yield 1
        return
    import torch

    torch_threads = torch.get_num_threads()
    current = numba.get_num_threads()   # starts the pool
    wanted = min(wanted, current)
    try:
        if wanted != current:
            numba.set_num_threads(wanted)
        yield wanted
    finally:
        if wanted != current:
            numba.set_num_threads(current)
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


_POOL = threading.local()
_POOL_KEEP = 1 << 26   # bytes: larger scratch arrays are not kept


def _free_refcount() -> int:
    """``sys.getrefcount`` of a pooled array that nothing else holds, measured on this interpreter.

    The count of a free array is the pool entry's, the local name's and the argument's, but what
    CPython counts differs between versions (3.14 stops counting some borrowed references), so it
    is measured once, in the same shape as :func:`scratch` reads it, and never hard-coded."""
    pool = {"probe": (np.empty(1), 0)}
    buf, _ = pool["probe"]
    return sys.getrefcount(buf)


_FREE_REFS = _free_refcount()


def scratch(role: str, shape, dtype=np.float64) -> np.ndarray:
    """An uninitialised numpy array, reused from the last call with the same ``role`` when nothing
    holds that one any more: a fresh array of megabytes costs a page fault per 4 KiB on every call
    (glibc hands large blocks back to the system), about as much as the kernel that fills it.

    The previous array is free when only the pool refers to it: every view handed out holds a
    reference to it (a view kept on an autograd ctx until its backward; a tensor made by
    :func:`pooled_tensor`, through its storage, for as long as that storage lives), so two graphs
    alive at once get two arrays, and an output that the caller keeps is never written again.
    One pool per calling thread; arrays over ``_POOL_KEEP`` bytes are not kept."""
    dtype = np.dtype(dtype)
    need = math.prod(shape)
    pad = 64 // dtype.itemsize
    pool = getattr(_POOL, "arrays", None)
    if pool is None:
        pool = _POOL.arrays = {}
    buf, start = pool.get(role, (None, 0))
    # a count above a free array's (_FREE_REFS) is a live view
    if (buf is None or buf.dtype != dtype or buf.size < need + pad or buf.size > 4 * need + 4096
            or sys.getrefcount(buf) > _FREE_REFS):
        buf = np.empty(max(need, 1) + pad, dtype)
        start = (-buf.ctypes.data % 64) // dtype.itemsize   # rows start on cache lines (64 bytes)
        if buf.nbytes <= _POOL_KEEP:
            pool[role] = (buf, start)
        else:
            pool.pop(role, None)
    return buf[start:start + need].reshape(shape)


def drop_scratch() -> None:
    """Forget this thread's pooled arrays (tests: the next calls allocate every buffer afresh)."""
    getattr(_POOL, "arrays", {}).clear()


def pooled_tensor(role: str, shape, dtype):
    """:func:`scratch` as a CPU tensor of torch dtype ``dtype`` (uninitialised: the kernel writes
    every element). Safe for outputs: the tensor's storage holds the array, so the pool hands it out
    again only once the caller, autograd and every view have let go of it."""
    import torch

    np_dtype = _NUMPY_DTYPES.get(dtype)
    if np_dtype is None:
        np_dtype = _NUMPY_DTYPES[dtype] = torch.empty(0, dtype=dtype).numpy().dtype
    return torch.from_numpy(scratch(role, shape, np_dtype))


_NUMPY_DTYPES: dict = {}   # torch dtype -> numpy dtype
