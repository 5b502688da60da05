"""Run the reading of files users send in a separate, confined process.

GDAL picks a driver by a file's *content*, and some drivers follow what a file names: a
GDAL VRT document saved as ``survey.geojson`` names any local file or URL to read, a
GeoJSON ``crs`` link is fetched over HTTP.  Parsers of spreadsheets and tables believe
the sizes a file declares.  So every read of an upload (and of a targets file) runs in a
helper process forked for that one read, in which

* only the GDAL drivers of the kinds gridwatch accepts stay registered (no VRT, no
  driver that opens other files or URLs), every HTTP request GDAL would make fails, and
  PROJ's network access is off;
* the process has its own network namespace with no interfaces, where the system lets
  it make one (as root, or with unprivileged user namespaces): :func:`network_isolation`
  says which applies;
* address space, CPU time and open files are limited (:class:`ReadLimits`), so a file
  that slips past the checks made before reading costs that helper, never a server
  worker.

The helper is forked from a ``forkserver`` that has the reading modules loaded, so a
read starts in tens of milliseconds.  A read the caller no longer wants (the client has
gone) is stopped by killing the helper.  A helper whose caller dies without stopping it (a
server worker killed with SIGKILL) notices that no one reads its pipe any more and kills
itself (:func:`_exit_when_orphaned`); the forkserver, which stays up while one of its helpers
does, then ends too, as does multiprocessing's resource tracker.  Long-lived helpers from the
same forkserver (a process pool) are given :func:`exit_with` as their initializer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import multiprocessing.connection
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from geo.errors import GridwatchError, InputError, TooLarge

T = TypeVar("T")

#: GDAL drivers that may open an upload, by the kinds gridwatch accepts.  Nothing else is
#: registered in a reading helper: no VRT, no SQLite (VirtualOGR), no CSV (read by pandas
#: here), no raster driver.  LIBKML reads KML's ExtendedData; it does not follow a
#: NetworkLink to a local file (tested), and any HTTP request it made would be refused.
ALLOWED_DRIVERS = frozenset({"ESRI Shapefile", "GPKG", "GeoJSON", "KML", "LIBKML"})

#: Modules the forkserver loads once, so that each helper starts with them in memory.
PRELOAD = ["geo.imports.importer"]

#: The helper's address space is this many times its memory (mapped files, reserved arenas).
ADDRESS_SPACE_FACTOR = 3

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class ReadLimits:
    """Limits of one reading helper process.

    Parameters
    ----------
    memory_bytes : int
        Memory of the helper: heap and private mappings (``RLIMIT_DATA``); its address
        space (``RLIMIT_AS``) is limited to :data:`ADDRESS_SPACE_FACTOR` times that, room
        for the files it maps.  A file whose declared or counted size is too large is
        refused by the checks before reading, not by this limit.
    cpu_seconds : int
        CPU time of the helper (``RLIMIT_CPU``).
    wall_seconds : float
        Time the caller waits before it stops the helper.
    open_files : int
        File descriptors of the helper (``RLIMIT_NOFILE``).
    max_rows : int, optional
        Rows a file may hold (checked in the helper, before anything is sent back); the
        web service sets it, since whatever is accepted is then cleaned and assigned in a
        server process.
    """

    memory_bytes: int = 4 * 1024**3
    cpu_seconds: int = 600
    wall_seconds: float = 900.0
    open_files: int = 256
    max_rows: int | None = None


class ReadCancelled(GridwatchError):
    """The caller stopped the read (the client went away)."""

    status = 499
    code = "cancelled"


# --- the parent's side ------------------------------------------------------------------------

_CONTEXT_LOCK = threading.Lock()
_SCOPE = threading.local()


@contextlib.contextmanager
def scope(limits: ReadLimits | None = None, cancelled: Callable[[], bool] | None = None) -> Iterator[None]:
    """Limits and a cancel check for every :func:`run` of this thread inside the block that
    is not given its own (the web layer sets them once per request: the configured limits,
    and whether the client has gone)."""
    previous = getattr(_SCOPE, "value", None)
    _SCOPE.value = (limits, cancelled)
    try:
        yield
    finally:
        _SCOPE.value = previous


def process_context() -> Any:
    """The multiprocessing context of gridwatch's helper processes (a forkserver with the
    reading modules preloaded).  Every helper process of gridwatch comes from it, so the
    preload is in place whichever helper starts first."""
    with _CONTEXT_LOCK:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx


def effective_limits(limits: ReadLimits | None = None) -> ReadLimits:
    """``limits``, else those of the enclosing :func:`scope`, else the defaults."""
    scoped = getattr(_SCOPE, "value", None)
    return limits or (scoped[0] if scoped else None) or ReadLimits()


def run(
    fn: Callable[..., T],
    *args: Any,
    limits: ReadLimits | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> T:
    """Call ``fn(*args)`` in a confined helper process and return its result.

    Parameters
    ----------
    fn : callable
        A module-level function (it is sent to the helper by name); its arguments and
        result must pickle.
    limits : ReadLimits, optional
        Limits of the helper.
    cancelled : callable, optional
        Asked about four times a second; when it answers True the helper is killed and
        :class:`ReadCancelled` raised.

    Raises
    ------
    GridwatchError
        Whatever user-facing error ``fn`` raised, rebuilt in this process.
    TooLarge
        The helper ran out of memory, CPU time or wall time.
    InputError
        The helper failed in another way (the file could not be read).
    """
    limits = effective_limits(limits)
    cancelled = cancelled or (getattr(_SCOPE, "value", None) or (None, None))[1]
    ctx = process_context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, limits, fn, args), daemon=True)
    proc.start()
    sender.close()
    deadline = time.monotonic() + limits.wall_seconds
    message: tuple[str, Any] | None = None
    try:
        while message is None:
            if receiver.poll(0.25):
                try:
                    message = receiver.recv()
                except (EOFError, OSError):  # the helper died before it answered
                    break
                continue
            if not proc.is_alive() and not receiver.poll(0):
                break
            if cancelled is not None and cancelled():
                raise ReadCancelled("请求已取消", "the request was cancelled")
            if time.monotonic() > deadline:
                raise TooLarge(
                    f"读取文件超时（超过 {limits.wall_seconds:.0f} 秒），请拆分后再上传",
                    f"reading the file took longer than {limits.wall_seconds:.0f} s: split it",
                    code="read_timeout",
                )
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()
    if message is None:
        raise _died(proc.exitcode, limits)
    kind, payload = message
    if kind == "ok":
        return payload
    if kind == "error":
        raise _rebuild(payload)
    if kind == "memory":
        raise _died(-signal.SIGKILL, limits)
    raise InputError(
        "无法读取文件（文件可能已损坏）",
        "the file cannot be read (it may be damaged)",
        code="unreadable",
    )


def _died(exitcode: int | None, limits: ReadLimits) -> GridwatchError:
    if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return TooLarge(
            f"读取此文件所需的内存或计算时间超出上限（{limits.memory_bytes / 1024**3:.1f} GB、"
            f"{limits.cpu_seconds} 秒），请拆分后再上传",
            f"reading this file needs more memory or CPU time than allowed "
            f"({limits.memory_bytes / 1024**3:.1f} GB, {limits.cpu_seconds} s): split it",
            code="read_limit",
        )
    return InputError(
        "无法读取文件（读取进程异常退出，文件可能已损坏）",
        "the file cannot be read (the reading process failed; the file may be damaged)",
        code="unreadable",
    )


def _rebuild(payload: dict[str, Any]) -> GridwatchError:
    """A user-facing error raised in the helper, as an instance of the same class here."""
    cls = payload["cls"]
    exc = cls(payload["zh"], payload["en"], code=payload["code"], details=payload["details"])
    return exc


# --- the helper's side ------------------------------------------------------------------------


def _child(sender: multiprocessing.connection.Connection, limits: ReadLimits, fn: Any, args: Any) -> None:
    try:
        confine(limits)
        _exit_when_orphaned(sender)
        result = fn(*args)
        message: tuple[str, Any] = ("ok", result)
    except GridwatchError as exc:
        message = (
            "error",
            {"cls": type(exc), "zh": exc.zh, "en": exc.en, "code": exc.code, "details": exc.details},
        )
    except MemoryError:
        message = ("memory", None)
    except Exception as exc:  # anything else: the file could not be read; nothing of it is sent back
        # GEOS and GDAL report an allocation refused by the memory limit as std::bad_alloc
        message = ("memory", None) if "bad_alloc" in str(exc) else ("failed", None)
    try:
        sender.send(message)
    except MemoryError:
        sender.send(("memory", None))
    finally:
        sender.close()


def _exit_when_orphaned(sender: multiprocessing.connection.Connection) -> None:
    """Kill this helper as soon as the reading end of ``sender`` is closed everywhere, that
    is when the process that called :func:`run` has gone (a worker killed with SIGKILL).

    The helper's parent is the forkserver, not the caller, and the forkserver stays up for
    as long as one of its helpers does, so a parent-death signal would never come; the
    pipe's reading end is held by the caller alone.  A watching thread waits on a copy of
    the writing end: the kernel reports POLLERR on it once no reader is left.  It is started
    after :func:`confine` (a new user namespace needs a single-threaded process).  The
    thread needs the GIL to act, so a read that holds the GIL inside C code is ended at its
    next release of it, or by the CPU-time limit."""
    fd = os.dup(sender.fileno())

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR, POLLHUP and POLLNVAL are reported whatever is asked
        while True:
            try:
                events = poller.poll()
            except InterruptedError:  # pragma: no cover - poll is retried by Python (PEP 475)
                continue
            if any(mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in events):
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def exit_with(pid: int) -> None:
    """End this process (SIGKILL) when process ``pid`` ends: the initializer of a pool of helper
    processes started from :func:`process_context`, given the pid of the process that owns the
    pool (``initializer=exit_with, initargs=(os.getpid(),)``).

    A pool's workers wait on a queue they also hold the writing end of, and their parent is the
    forkserver, so nothing else ends them when their owner is killed.  Watched through a pidfd
    (Linux 5.3+), else by asking every second whether ``pid`` is still there."""
    opener = getattr(os, "pidfd_open", None)
    try:
        fd = opener(pid) if opener is not None else None
    except ProcessLookupError:  # the owner is already gone
        os.kill(os.getpid(), signal.SIGKILL)
        return
    except OSError:  # no pidfd on this system
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has ended
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


_NETWORK_ISOLATION: str | None = None


def confine(limits: ReadLimits) -> str:
    """Confine this process for reading untrusted files (called in the helper only).

    Returns how the network is cut off: ``"namespace"`` (a network namespace of its own)
    or ``"gdal"`` (GDAL's and PROJ's requests refused, no namespace available)."""
    global _NETWORK_ISOLATION
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # the memory a read may take: heap and private mappings (RLIMIT_DATA), which a file mapped
    # read-only (a large DBF is read that way) does not count; the address space is bounded too
    resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
    space = limits.memory_bytes * ADDRESS_SPACE_FACTOR
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = limits.open_files if hard == resource.RLIM_INFINITY else min(limits.open_files, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(cap, soft) if soft > 0 else cap, cap))
    _confine_gdal()
    _NETWORK_ISOLATION = "namespace" if _own_network_namespace() else "gdal"
    return _NETWORK_ISOLATION


def _own_network_namespace() -> bool:
    """Move this process into a new, empty network namespace; False where the system does
    not allow it (no CAP_SYS_ADMIN and no unprivileged user namespaces)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET):
        if libc.unshare(flags) == 0:
            return True
        if ctypes.get_errno() not in (errno.EPERM, errno.EINVAL, errno.ENOSPC, errno.EUSERS):
            break
    return False


class _HTTPResult(ctypes.Structure):
    # CPLHTTPResult of cpl_http.h
    _fields_ = [
        ("nStatus", ctypes.c_int),
        ("pszContentType", ctypes.c_void_p),
        ("pszErrBuf", ctypes.c_void_p),
        ("nDataLen", ctypes.c_int),
        ("nDataAlloc", ctypes.c_int),
        ("pabyData", ctypes.c_void_p),
        ("papszHeaders", ctypes.c_void_p),
        ("nMimePartCount", ctypes.c_int),
        ("pasMimePart", ctypes.c_void_p),
    ]


_FETCH = ctypes.CFUNCTYPE(
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
)
_KEEP: list[Any] = []  # the callback must outlive this module's functions


def libgdal_path() -> str:
    """Path of the GDAL library loaded in this process (pyogrio's)."""
    import pyogrio  # noqa: F401  (loads GDAL)

    with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            path = line.rstrip("\n").split(None, 5)[-1] if line.count(" ") >= 5 else ""
            if "libgdal" in os.path.basename(path) and ".so" in path:
                return path
    raise RuntimeError("the GDAL library is not loaded")


def _confine_gdal() -> None:
    """Unregister every GDAL driver but :data:`ALLOWED_DRIVERS`, refuse GDAL's HTTP requests
    and turn PROJ's network access off, for the rest of this process's life."""
    import pyogrio
    import pyproj

    gdal = ctypes.CDLL(libgdal_path())
    gdal.GDALGetDriverCount.restype = ctypes.c_int
    gdal.GDALGetDriver.restype = ctypes.c_void_p
    gdal.GDALGetDriver.argtypes = [ctypes.c_int]
    gdal.GDALGetDriverShortName.restype = ctypes.c_char_p
    gdal.GDALGetDriverShortName.argtypes = [ctypes.c_void_p]
    gdal.GDALDeregisterDriver.argtypes = [ctypes.c_void_p]
    drivers = [gdal.GDALGetDriver(i) for i in range(gdal.GDALGetDriverCount())]
    for handle in drivers:
        if gdal.GDALGetDriverShortName(handle).decode() not in ALLOWED_DRIVERS:
            gdal.GDALDeregisterDriver(handle)
    left = {
        gdal.GDALGetDriverShortName(gdal.GDALGetDriver(i)).decode() for i in range(gdal.GDALGetDriverCount())
    }
    if not left <= ALLOWED_DRIVERS:
        raise RuntimeError(f"GDAL drivers still registered: {sorted(left - ALLOWED_DRIVERS)}")

    gdal.VSICalloc.restype = ctypes.c_void_p
    gdal.VSICalloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    gdal.CPLStrdup.restype = ctypes.c_void_p
    gdal.CPLStrdup.argtypes = [ctypes.c_char_p]

    def refuse(*_: Any) -> int:
        # an error result, freed by GDAL with CPLHTTPDestroyResult
        pointer = gdal.VSICalloc(1, ctypes.sizeof(_HTTPResult))
        result = _HTTPResult.from_address(pointer)
        result.nStatus = 1
        result.pszErrBuf = gdal.CPLStrdup(b"network access is disabled while reading uploads")
        return int(pointer)

    callback = _FETCH(refuse)
    _KEEP.append(callback)
    gdal.CPLHTTPSetFetchCallback.argtypes = [_FETCH, ctypes.c_void_p]
    gdal.CPLHTTPSetFetchCallback.restype = ctypes.c_int
    gdal.CPLHTTPSetFetchCallback(callback, None)
    if hasattr(gdal, "OSRSetPROJEnableNetwork"):
        gdal.OSRSetPROJEnableNetwork.argtypes = [ctypes.c_int]
        gdal.OSRSetPROJEnableNetwork(0)
    pyproj.network.set_network_enabled(False)
    os.environ["PROJ_NETWORK"] = "OFF"
    pyogrio.set_gdal_config_options(
        {
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".gridwatch-none",
            "GDAL_HTTP_TIMEOUT": "1",
            "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
        }
    )


def network_isolation() -> str:
    """How a reading helper on this system is cut off from the network: ``"namespace"``
    or ``"gdal"`` (see :func:`confine`).  Starts one helper to find out."""
    return run(_isolation_probe, limits=ReadLimits(wall_seconds=60))


def _isolation_probe() -> str:
    return _NETWORK_ISOLATION or "none"
