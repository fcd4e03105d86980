"""What kombu keeps in Redis for a queue, forgotten: shared by the worker tests and
the bill-run benchmark, which both run workers on private queues of a shared Redis.
Imports nothing of the project, so the benchmark can use it without Django."""

import json

import redis


def forget_queue_keys(broker_url: str, marker: str) -> None:
    """Delete the queues and workers named with ``marker``: their keys, their bindings,
    and messages left unacknowledged by killed workers. Raises ``redis.RedisError``."""
    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        for key in client.scan_iter(match=f"*{marker}*", count=1000):
            client.delete(key)
        for key in client.scan_iter(match="_kombu.binding.*", count=1000):
            stale = [m for m in client.smembers(key) if marker.encode() in m]
            if stale:
                client.srem(key, *stale)
        for tag, raw in client.hscan_iter("unacked", count=1000):
            try:
                _message, exchange, routing_key = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if marker in f"{exchange} {routing_key}":
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()
