"""The process's SQLite writer lock serves its waiters in the order they came: a thread that loops
over transactions (a maintenance drain) takes turns with the API's writers instead of starving them."""

from __future__ import annotations

import threading
import time

from prevenance.db import FairWriterLock


def _until(condition: object) -> None:
    """Wait for a state another thread reaches (no timing is asserted)."""
    while not condition():  # type: ignore[operator]
        time.sleep(0.001)


def test_the_lock_goes_to_the_longest_waiter_not_back_to_the_thread_that_released_it() -> None:
    lock = FairWriterLock()
    order: list[str] = []

    def writer(name: str) -> None:
        lock.acquire()
        order.append(name)
        lock.release()

    assert lock.acquire()
    first = threading.Thread(target=writer, args=("first waiter",))
    first.start()
    _until(lambda: lock.waiting == 1)
    second = threading.Thread(target=writer, args=("second waiter",))
    second.start()
    _until(lambda: lock.waiting == 2)
    lock.release()
    assert lock.acquire()  # the releasing thread asks again at once: it queues behind both
    order.append("releaser again")
    lock.release()
    first.join()
    second.join()
    assert order == ["first waiter", "second waiter", "releaser again"]


def test_the_lock_is_reentrant_for_its_owner() -> None:
    lock = FairWriterLock()
    assert lock.acquire() and lock.acquire()
    lock.release()
    taken = threading.Event()

    def other() -> None:
        lock.acquire()
        taken.set()
        lock.release()

    thread = threading.Thread(target=other)
    thread.start()
    _until(lambda: lock.waiting == 1)
    assert not taken.is_set()  # still held once
    lock.release()
    thread.join()
    assert taken.is_set()


def test_a_waiter_whose_timeout_passes_leaves_the_queue() -> None:
    lock = FairWriterLock()
    assert lock.acquire()
    answers: list[bool] = []
    thread = threading.Thread(target=lambda: answers.append(lock.acquire(timeout=0.01)))
    thread.start()
    thread.join()
    assert answers == [False] and lock.waiting == 0
    lock.release()
    assert lock.acquire(timeout=0)  # free again
    lock.release()


def test_only_the_owner_may_release() -> None:
    lock = FairWriterLock()
    errors: list[BaseException] = []

    def stranger() -> None:
        try:
            lock.release()
        except RuntimeError as error:
            errors.append(error)

    lock.acquire()
    thread = threading.Thread(target=stranger)
    thread.start()
    thread.join()
    lock.release()
    assert len(errors) == 1
