"""What a validator knows about each partition it owns, and the only ways that knowledge changes. Pure.

Per owned partition:

- ``progress``: the last offset prepared (applied to Redis, or on its way there).
- ``epoch``: a counter that a fence or a failed write moves on. Batches carry the epoch they were prepared
  in; a batch whose epoch has ended is dropped unapplied and uncommitted (its judgement rests on a history
  that is not the real one).
- a pending *resync*: where to read the partition again from, applied by the next prepare (which owns the
  consumer's position).
- ``unverified``: the last batch never reached Redis (``processing_failed``), so Redis progress lags ours and
  the next slice is applied without the compare-and-set (:data:`UNVERIFIED`).
- ``careful_until``: the previous owner died judging records up to this offset; until past it, records are
  judged one at a time (the crash-loop guard in validator.py).

Transitions, named for what happened: :meth:`Partitions.assign`, :meth:`~Partitions.revoke`,
:meth:`~Partitions.fence` (another member, or our own timed-out attempt, wrote the partition),
:meth:`~Partitions.fail` (a batch's Redis write failed through every retry), :meth:`~Partitions.resync`
(apply the pending resyncs) and :meth:`~Partitions.take` (a batch is prepared).
"""

from __future__ import annotations

UNVERIFIED = -2  # Slice.prev meaning "apply whatever Redis recorded"


class Partition:
    __slots__ = ("progress", "unverified", "careful_until")

    def __init__(self, progress: int, careful_until: int | None = None) -> None:
        self.progress = progress
        self.unverified = False
        self.careful_until = careful_until


class Partitions:
    def __init__(self) -> None:
        self._owned: dict[int, Partition] = {}
        # Epochs outlive ownership: a batch prepared before a revoke must never match a later epoch.
        self._epochs: dict[int, int] = {}
        self._resyncs: dict[int, tuple[int, bool]] = {}  # partition -> (resume after, unverified)

    # -- transitions -------------------------------------------------------------------------------

    def assign(self, progress: dict[int, int], high_water: dict[int, int]) -> dict[int, tuple[int, int]]:
        """Own these partitions, at their applied progress. Returns, for partitions whose previous owner
        died mid-batch (it marked records beyond the applied progress), the offsets it died among."""
        self._owned = {}
        died: dict[int, tuple[int, int]] = {}
        for number, done in progress.items():
            mark = high_water.get(number, -1)
            careful = mark if mark > done else None
            self._owned[number] = Partition(done, careful)
            if careful is not None:
                died[number] = (done + 1, mark)
        return died

    def revoke(self, numbers: set[int]) -> None:
        for number in numbers:
            self._owned.pop(number, None)
            self._resyncs.pop(number, None)
            self._new_epoch(number)

    def fence(self, number: int, stored: int) -> None:
        """Redis refused a slice: its progress is ``stored``, not what the slice was judged on. Drop what was
        prepared since, and read again after ``stored``."""
        self._new_epoch(number)
        self._resyncs[number] = (stored, False)

    def fail(self, number: int, last: int) -> None:
        """A batch up to ``last`` never reached Redis (its accepted pings were dead-lettered): go on after it,
        with Redis progress now behind ours."""
        self._new_epoch(number)
        self._resyncs[number] = (last, True)

    def resync(self) -> list[tuple[int, int]]:
        """Apply the pending resyncs; returns (partition, offset to read from) for each, to seek the consumer."""
        seeks = []
        for number, (resume_after, unverified) in self._resyncs.items():
            partition = self._owned.get(number)
            if partition is None:
                continue
            partition.progress = resume_after
            partition.unverified = unverified
            seeks.append((number, resume_after + 1))
        self._resyncs.clear()
        return seeks

    def take(self, number: int, last: int) -> int:
        """A batch up to ``last`` is prepared: returns the ``prev`` its slice must carry (the progress it was
        judged on, or :data:`UNVERIFIED`), and moves progress on."""
        partition = self._owned[number]
        prev = UNVERIFIED if partition.unverified else partition.progress
        partition.unverified = False
        partition.progress = last
        return prev

    # -- questions ---------------------------------------------------------------------------------

    @property
    def owned(self) -> set[int]:
        return set(self._owned)

    def owns(self, number: int) -> bool:
        return number in self._owned

    def progress(self, number: int) -> int:
        return self._owned[number].progress

    def epoch(self, number: int) -> int:
        return self._epochs.get(number, 0)

    @property
    def pending_resync(self) -> bool:
        return bool(self._resyncs)

    @property
    def any_careful(self) -> bool:
        return any(partition.careful_until is not None for partition in self._owned.values())

    def careful(self, number: int) -> bool:
        """Whether records of ``number`` are judged one at a time now; ends once progress is past the mark."""
        partition = self._owned[number]
        if partition.careful_until is not None and partition.progress >= partition.careful_until:
            partition.careful_until = None  # past the records the previous owner died on
        return partition.careful_until is not None

    def _new_epoch(self, number: int) -> None:
        self._epochs[number] = self._epochs.get(number, 0) + 1
