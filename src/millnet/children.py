"""Child processes that do not outlive the process that started them.

``die_with_parent`` is a ``preexec_fn`` for :class:`subprocess.Popen`: between fork and exec
the child asks the kernel (Linux ``PR_SET_PDEATHSIG``) for SIGTERM when its parent dies, even
by SIGKILL, so a demo or a benchmark killed outright leaves no broker or node behind. The
signal follows the *thread* that forked the child: start long-lived children from the main
thread (a worker thread that exits would take its children with it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: ask for SIGTERM when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None

    def arm() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before the prctl took effect
            os._exit(1)
    return arm


def bound_to_this_process() -> Callable[[], None] | None:
    """``die_with_parent`` for a child started on the main thread; None on another thread,
    whose exit would signal the child while this process still needs it."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return die_with_parent(os.getpid())
