"""A loopback TCP proxy in front of the moto server that can cut a transfer mid-stream.

``arm(after)`` cuts the connection that carries the ``after``-th byte of server-to-client
traffic (the next response body), as a dropped network link would; with ``stay_down`` every
later connection is refused too, as if the server had died, until ``restore()``.
"""

from __future__ import annotations

import socket
import threading


class FlakyProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.cut_after: int | None = None
        self.stay_down = False
        self.down = False
        self.sent = 0
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, after: int, *, stay_down: bool = False) -> None:
        with self.lock:
            self.cut_after, self.stay_down, self.sent = after, stay_down, 0

    def restore(self) -> None:
        with self.lock:
            self.cut_after, self.down = None, False

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                _hang_up(conn)
                continue
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                _hang_up(conn)
                continue
            threading.Thread(target=self._pump, args=(conn, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if downstream and (allowed := self._budget(len(data))) is not None:
                    dst.sendall(data[:allowed])
                    break
                dst.sendall(data)
        except OSError:
            pass
        _hang_up(src)
        _hang_up(dst)

    def _budget(self, n: int) -> int | None:
        """Bytes of this chunk to pass before cutting, or None to pass it all."""
        with self.lock:
            if self.cut_after is None or self.sent + n <= self.cut_after:
                self.sent += n
                return None
            allowed = max(0, self.cut_after - self.sent)
            self.cuts += 1
            self.cut_after = None
            self.down = self.stay_down
            return allowed


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
