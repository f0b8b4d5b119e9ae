"""Real-time courier location tracker built on Kafka."""

__version__ = "0.1.0"
