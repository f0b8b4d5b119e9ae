"""What runs on this machine only: the embedded broker and Redis for laptops and tests, and their processes.

A deployment against a real cluster never imports this package (the product's services take their
connections from :class:`~tracker.settings.Settings`); ``tracker up``, the tests, the benchmarks and the fuzz
run do.

- :mod:`tracker.local.processes`: child processes that die with us with their output in a log (``spawn``), free
  loopback ports and a process's resident memory. Both launchers use it; it imports neither of them. What the
  services need too (``popen``, ``die_with``, ``stop_process``, the restart policy, a child's environment) is
  :mod:`tracker.supervision`, outside this package, which the services may import.
- :mod:`tracker.local.apache_kafka`: the Apache Kafka 4.x launcher (jars, Java, config, 1 or 3 KRaft nodes,
  kill and restart); ``python -m tracker.local.apache_kafka`` (``make kafka``) runs one by hand. Its readiness
  probe asks the broker through :mod:`tracker.kafka`, the one module that speaks Kafka.
- :mod:`tracker.local.embedded`: :class:`~tracker.local.embedded.EmbeddedStack`, the broker (Apache Kafka or
  Tansu) and redis-server that ``tracker up`` and the tests start when no cluster is configured, with
  restarts of either for fault tests.
"""
