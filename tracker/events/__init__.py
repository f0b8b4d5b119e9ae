"""Zone and status events: which zone a courier entered or left and when, and when it went online, idle,
stale or offline, decided by event time, once.

How an event comes about: the validator accepts a fix -> ``courier-positions`` -> ``worker`` (consumer group
``zone-events``, ``tracker events``) finds its zones (``zones``) and folds it into the courier's state
(``decide``) -> ``courier-events`` (keyed by courier) -> ``indexer`` (group ``event-indexer``, in the same
process) -> ``index`` in Redis -> ``http`` (``GET /api/events``).

- ``decide``: the pure fold (enter / exit with the dwell, status changes, the event ids) and a partition's
  event-time clock.
- ``zones``: the service area's zones as geofences, one vectorised query per batch.
- ``worker``: the consumer that decides, produces and applies; its docstring is the exactly-once argument,
  the clock for stale/offline, and why this is not done in the validator.
- ``index``, ``indexer``: the index behind the API and the consumer that fills it.
- ``http``: the ``/api/events`` routes; ``metrics``: events by type for ``/metrics``; ``cli``: ``tracker events``.

Nothing is imported here, so that the pure modules come without Kafka or HTTP.
"""
