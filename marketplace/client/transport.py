"""The SDK's HTTP transport: httpx's own, reading the socket in large pieces.

httpcore reads a response 64 KiB at a time, and every piece goes through h11's parser,
httpx's decoders and the SDK's stream reader in Python: for a 6 MB result that is about
100 rounds costing 10 ms, more than decoding it (benchmarks/sdk_arrow.py). A read asks
the kernel for at most ``READ_BYTES`` instead; it returns what has arrived, so small
responses are unaffected and nothing waits for a piece to fill. The connection, TLS,
proxies from the environment, timeouts and errors are httpx's own.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

#: Largest piece of a response read from the socket at once.
READ_BYTES = 1 << 20


def with_large_reads(client: httpx.Client) -> httpx.Client:
    """``client`` with its default transport's connections reading up to ``READ_BYTES`` at once.

    The client is built by httpx as usual (so proxies from the environment still apply:
    passing a transport of our own would turn them off); only the network backend of its
    default connection pool is wrapped. Should httpx ever lay its transport out otherwise,
    the client is left as it is: slower on large results, nothing else.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.ConnectionPool) and isinstance(backend, httpcore.NetworkBackend) \
            and not isinstance(backend, LargeReads):
        pool._network_backend = LargeReads(backend)
    return client


class LargeReads(httpcore.NetworkBackend):
    """A network backend whose streams read up to ``READ_BYTES`` whatever piece the caller asks for."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return LargeReadStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return LargeReadStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class LargeReadStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max(max_bytes, READ_BYTES), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return LargeReadStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
