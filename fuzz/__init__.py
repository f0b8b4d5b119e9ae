"""Fuzzing the live tracker: a seeded corpus of good and hostile payloads (:mod:`fuzz.corpus`), records no
Kafka client would write (:mod:`fuzz.wire`), and a run through the real system that accounts for every
payload (:mod:`fuzz.live`). Run from the repository like ``bench``: ``python -m fuzz`` (``make fuzz``); it is
not installed with the product."""
