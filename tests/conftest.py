"""Run-wide hooks, on the host and in the test VM alike: a pytest run ends with its summary.

- pytest cannot outlive its report: when the session is over and threads that are not
  daemons still live (a test that failed before joining them), Python would wait for
  them for ever at exit (the guest never wrote its verdict, the boot ran into its
  deadline). Instead the run names them, with their stacks and the test that started
  each, and ends at once with a failing status: a leaked thread is a test's bug, even
  when every test passed.
- SIGUSR2 (tests/harness/guest.sh's deadline: `timeout -s USR2`) writes every
  thread's stack at once, even while the main thread is blocked in a system call, then
  fails the test under way (as pytest-timeout does) and stops the run after it: the
  summary and the JUnit XML still come, with the tests run so far and that failure.
"""

import faulthandler
import functools
import os
import signal
import sys
import threading
import traceback
import weakref
from collections.abc import Generator
from types import FrameType

import pytest

# the signal that ends a run at its deadline; SIGUSR1 is mgdump's (in-process tests)
DEADLINE_SIGNAL = signal.SIGUSR2
EXIT_STATUS = pytest.StashKey[int]()
# non-daemon thread -> the test during which it was started
STARTED_BY: "weakref.WeakKeyDictionary[threading.Thread, str]" = weakref.WeakKeyDictionary()
# the session under way, which the deadline's handler stops
SESSIONS: list[pytest.Session] = []
DEADLINE = "the run's deadline (SIGUSR2: tests/harness/guest.sh's timeout)"


def on_deadline(_signum: int, _frame: FrameType | None) -> None:
    for session in SESSIONS:
        session.shouldstop = DEADLINE  # no test after this one
    pytest.fail(DEADLINE)


@functools.cache
def real_stderr() -> int:
    """A copy of fd 2 as it is now (in pytest_configure: the terminal), for the stack
    dump: while a test runs, fd 2 is pytest's capture file."""
    return os.dup(2)


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # an in-process pytester run inside another; signals are the main thread's
    signal.signal(DEADLINE_SIGNAL, on_deadline)
    # the C-level dump first, then (chain) the Python handler above
    faulthandler.register(DEADLINE_SIGNAL, file=real_stderr(), all_threads=True, chain=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    SESSIONS[:] = [session]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    before = set(threading.enumerate())
    try:
        return (yield)
    finally:
        for thread in set(threading.enumerate()) - before:
            if not thread.daemon:
                STARTED_BY.setdefault(thread, item.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


def leaked_threads() -> list[threading.Thread]:
    """Threads that would keep the interpreter from exiting."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def describe(thread: threading.Thread) -> str:
    started = STARTED_BY.get(thread, "no test (a fixture or a hook?)")
    frame = sys._current_frames().get(thread.ident or 0)
    stack = "".join(traceback.format_stack(frame)) if frame else "  (no stack)\n"
    return f"thread {thread.name!r}, started during {started}, is at:\n{stack}"


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Last of all: the summary and the JUnit XML were written in sessionfinish."""
    left = leaked_threads()
    if not left or threading.current_thread() is not threading.main_thread():
        return
    status = config.stash.get(EXIT_STATUS, 0) or int(pytest.ExitCode.TESTS_FAILED)
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()  # what it still holds goes out now
    sys.stdout.flush()
    lines = [
        f"pytest: FAILED: {len(left)} non-daemon thread(s) outlived the tests (a test must "
        f"join its threads or make them daemons); exiting with status {status} instead "
        "of waiting for them",
        *(describe(t) for t in left),
    ]
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    os._exit(status)
