"""Thread counts for fitting and evaluation, for quiet and for busy machines.

Rules, applied by :func:`thread_budget` around every ``fit`` and ``evaluate``:

1. A configured count always wins: :func:`set_threads` (the CLI's ``threads:``) or the
   ``PRISMREC_THREADS`` environment variable.
2. Otherwise the count is ``torch.get_num_threads()`` (an upper bound the caller may
   lower with ``torch.set_num_threads``), reduced to the CPUs that are free when the
   work starts: the CPUs this process may use (affinity, cgroup quota) minus the
   runnable threads of other processes. Two threads sharing a core with a busy process
   are slower than one thread alone.
3. Every pool follows that count for the duration: torch, numba (through
   ``torch.get_num_threads()``, see :func:`prismrec.models.graph.csr_matmul`), faiss, and
   numpy's BLAS; torch's own count is restored afterwards.

:func:`wait_passively` runs when ``prismrec`` is imported: it asks OpenMP runtimes that
start after it to sleep rather than spin between parallel regions (``OMP_WAIT_POLICY=
PASSIVE``, ``KMP_BLOCKTIME=0``), unless the user chose otherwise. A spinning pool costs
little on a quiet machine and a lot on a busy one.

Example:
    >>> import torch
    >>> set_threads(1)
    >>> with thread_budget():
    ...     torch.get_num_threads()
    1
    >>> set_threads(None)
"""
from __future__ import annotations

import contextlib
import math
import os
import time

#: set before OpenMP runtimes start (they read it once): idle workers sleep instead of spinning
PASSIVE_WAITING = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}

_configured: int | None = None
_depth = 0  # thread_budget nesting: the outermost one decides
#: a free-CPU reading is reused for this many seconds (a probe costs a few milliseconds)
PROBE_SECONDS = 1.0
_last_probe: tuple[float, int] = (-1e9, 0)


def wait_passively() -> None:
    """Set :data:`PASSIVE_WAITING` in the environment where the user has not set it."""
    for name, value in PASSIVE_WAITING.items():
        os.environ.setdefault(name, value)


def set_threads(count: int | None) -> None:
    """Pin the thread count of every later fit and evaluation (``None`` unpins it).

    Example:
        >>> set_threads(2); configured_threads()
        2
        >>> set_threads(None); configured_threads() is None
        True
    """
    global _configured
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError(f"threads must be a positive integer (or None for the free CPUs), got {count!r}")
    _configured = count
    if count is not None:
        import torch

        torch.set_num_threads(count)


def configured_threads() -> int | None:
    """The pinned count: :func:`set_threads`, else ``PRISMREC_THREADS``, else ``None``."""
    if _configured is not None:
        return _configured
    value = os.environ.get("PRISMREC_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"PRISMREC_THREADS must be a positive integer, got {value!r}")
    return int(value)


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def busy_elsewhere(samples: int = 5, interval: float = 0.0005) -> float:
    """Runnable threads of *other* processes now: the mean over ``samples`` readings of the
    kernel's running count (``/proc/loadavg``) minus this process's own running threads.
    Where ``/proc`` is missing, the 1-minute load average."""
    readings = []
    for index in range(samples):
        try:
            running = int(open("/proc/loadavg").read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
            return os.getloadavg()[0]
        readings.append(max(0, running - _own_running_threads()))
        if index + 1 < samples:
            time.sleep(interval)
    return sum(readings) / len(readings)


def _own_running_threads() -> int:
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            state = open(f"/proc/self/task/{task}/stat").read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return count


def free_cpus() -> int:
    """Usable CPUs not taken by other processes' runnable threads (at least 1); a reading
    younger than :data:`PROBE_SECONDS` is reused."""
    global _last_probe
    now = time.monotonic()
    if now - _last_probe[0] >= PROBE_SECONDS:
        _last_probe = (now, max(1, usable_cpus() - round(busy_elsewhere())))
    return _last_probe[1]


def budget() -> int:
    """The thread count :func:`thread_budget` would use now (rules 1 and 2 above)."""
    configured = configured_threads()
    if configured is not None:
        return configured
    import torch

    ceiling = torch.get_num_threads()
    return 1 if ceiling <= 1 else min(ceiling, free_cpus())


@contextlib.contextmanager
def thread_budget():
    """Run the block with :func:`budget` threads in torch, numba, faiss and BLAS; restore
    torch's count afterwards. Nested blocks (an evaluation inside a fit) keep the outer count.

    Example:
        >>> with thread_budget():  # doctest: +SKIP
        ...     model.fit(train)
    """
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    import torch

    previous, count = torch.get_num_threads(), budget()
    torch.set_num_threads(count)
    _depth += 1
    try:
        with blas_limit(count):
            yield
    finally:
        _depth -= 1
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def blas_limit(count: int):
    """numpy's BLAS pool held at ``count`` threads for the block (threadpoolctl, a declared dependency)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(count, user_api="blas")
