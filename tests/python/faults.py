"""Real faults for tests: a TCP proxy on 127.0.0.1 that forwards to a server and, while told to, resets
every connection (open ones and new ones) — an S3 or Glue endpoint that is unreachable, not a flag in the
code under test."""
import socket
import struct
import threading

from servers import free_port


class ResettingProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.resetting = False
        self.resets = 0
        self._open = set()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(128)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def _reset(self, s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass
        with self._lock:
            self._open.discard(s)

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.resetting:
                self.resets += 1
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data or self.resetting:
                for s in (src, dst):
                    self._reset(s)
                return
            try:
                dst.sendall(data)
            except OSError:
                for s in (src, dst):
                    self._reset(s)
                return

    def start_resetting(self):
        """From now on every connection is reset, open ones included."""
        self.resetting = True
        with self._lock:
            open_now = list(self._open)
        for s in open_now:
            self.resets += 1
            self._reset(s)

    def stop_resetting(self):
        self.resetting = False

    def close(self):
        self._closed = True
        self.start_resetting()
        self._sock.close()
