"""The API process keeps the memory it frees for its next request instead of handing it back to the kernel.

Encoding a result allocates arrays of a few hundred kilobytes to a few megabytes per
column and frees them once sent. glibc serves each allocation above 128 KiB with a fresh
``mmap`` and returns it with ``munmap`` when freed (and trims the heap above 128 KiB of
free space), so every request faults every page of its arrays in again: on this VM about
4,400 faults and 10 ms per million rows of a timestamp column, more than the
arithmetic. Raising both thresholds keeps freed memory in the process for the next
request, as a long-lived server wants. The cost is bounded: the heap keeps at most
``TRIM_THRESHOLD`` unused bytes above its top.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Allocations below this come from the heap (reused) rather than their own mapping.
MMAP_THRESHOLD = 64 * 2**20
#: Free space the heap keeps at its top before giving memory back to the kernel.
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set glibc's thresholds for this process; False where the C library is not glibc (nothing is changed)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and others have no mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
