"""The dead-letter review: rejected pings, from the dead letter to the operator's replay or discard.

How a rejected ping travels: tracker/validator.py judges it -> ``letter`` builds the dead letter -> the DLQ
topic (``location-updates.DLQ``) -> ``indexer`` consumes it -> ``entry`` turns it into a review entry ->
``index`` keeps it in Redis -> ``http`` (the review page, ``/api/dlq``) and ``cli`` (``tracker dlq``) list it
-> ``actions`` replays it (signed) to ``location-updates``, or discards it.

- ``letter``: the dead-letter record, the original's key, value and headers plus ``dlq.*`` (pure).
- ``entry``: a DLQ record as a review entry, a row's JSON shape, and the replay record (pure).
- ``index``: the review index's rules (caps, filters, cursors, pages, counts) and its Lua scripts; every
  Redis call goes through :class:`tracker.store.Store`.
- ``indexer``: the consumer group ``dlq-indexer``, run inside each gateway, that feeds the index.
- ``actions``: replay and discard, shared by the HTTP API and the CLI.
- ``http``: the ``/api/dlq`` routes and the write-token check.
- ``cli``: ``tracker dlq``.

Nothing is imported here, so that importing the pure modules (the validator needs ``letter``) pulls in
neither HTTP nor Kafka.
"""
