"""Orders and the customers' tracking links: one courier, shown privately to the customer whose order it
carries, only while it carries it.

How a link comes about and what it shows: an operator (or a partner's system, with an operator token) posts
an order -> ``service`` stores it in Redis and ``link`` signs a token naming the order, its courier, the
drop-off (and pickup) and an expiry -> the customer opens ``/track/<token>`` -> ``http`` checks the token
(signature, expiry: no lookup) and Redis (revoked?) -> the page opens ``/ws/track/<token>`` (tracker/ws.py)
-> the hub's tick hands that courier's newer fixes to ``watch``, which encodes one frame per order and gives
the same string to every socket watching it. The order's state (``state``: to_pickup, picked_up, arriving,
delivered, forward only) is decided once, by event time, by the events worker (tracker/events/orders.py),
which produces ``order_*`` events to ``courier-events`` and stores the state; the gateway reads the stored
state about once a second for the orders it serves, so the page and the events never disagree.

- ``link``: the token (pure). ``state``: the state rule, distance, ETA and coarsening (pure).
- ``watch``: the gateway's in-memory index of tracking sockets by courier, and the frames (no I/O).
- ``service``: create / deliver, shared by the API and the CLI. ``http``: the routes. ``cli``: ``tracker
  orders``. ``orders.lua``: the atomic writes (every key in KEYS, one hash tag).
"""
