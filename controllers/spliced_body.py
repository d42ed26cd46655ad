"""Request bodies read straight from gunicorn's socket: zero-copy uploads to local disk, and
one-copy reads for the cloud backends.

gunicorn hands the application a body (``wsgi.input``) that copies each byte through Python
several times: out of the socket, through its own buffers and through werkzeug's size limit.
Writing the bytes to a file is one more copy. On Linux the kernel can move them from the socket
into the file without any of that (splice(2)), which roughly doubles how fast a large upload
lands on local disk (``benchmarks/storage_throughput.py``) and leaves the CPU to the rest of the
platform. The cloud backends, which must hold each part in memory to send it, get ``readinto``:
the socket's bytes land in the part's buffer with one copy, the one ``recv_into`` makes.

It is done only where it is safe: a plain (not TLS) HTTP/1.1 connection served by gunicorn, a
body with a Content-Length, and Linux. Everything else (the development server, the test
client, chunked bodies, TLS, HTTP/2, other systems) keeps the ordinary stream.

It reaches into gunicorn's private request body (``Body.buf``, its ``LengthReader`` and the
``Unreader``'s read-ahead), so it goes through the adapter :data:`BODY`: once per process, a
real request parsed by the installed gunicorn on a socket pair is read through every path of
:class:`SplicedBody`, and a pipelined next request must still parse after it. If anything
differs, every body keeps gunicorn's stream (``wsgi.input``) and one log line says so.
"""

from __future__ import annotations

import io
import os
import select
import socket

try:
    import fcntl
except ImportError:  # not a Unix: nothing here is used there
    fcntl = None

from werkzeug.exceptions import ClientDisconnected

from logging_layer.adapters import Adapter

#: bytes moved per splice(2) call, and the pipe's capacity (Linux's largest for a normal user):
#: the default 64 KiB pipe halves the speed
PIPE_BYTES = 1024 * 1024


def write_all(fd: int, data) -> int:
    view, done = memoryview(data), 0
    while done < len(view):
        done += os.write(fd, view[done:])
    return done


class SplicedBody:
    """A request body that reads like ``stream`` until asked for more: :meth:`readinto` fills a
    caller's buffer straight from the socket, and :meth:`drain_into` moves all the remaining
    bytes into a file descriptor (the protocol ``LocalStorage.upload`` looks for).

    ``body`` is gunicorn's ``wsgi.input`` and ``sock`` the connection's socket. The first
    ``readinto`` or ``drain_into`` takes the bytes gunicorn has already taken from the socket
    (its read-ahead) and hands them out first; from then on the socket is read directly, and
    ``read`` does the same. Bytes of a next, pipelined request stay in gunicorn's buffer, and the
    body is marked as read, so a kept-alive connection goes on with the next request.
    """

    def __init__(self, stream, body, sock: socket.socket):
        self.stream, self._body, self._sock = stream, body, sock
        self._held: memoryview | None = None  # read-ahead taken over, not yet handed out

    def read(self, size: int = -1) -> bytes:
        if self._held is None:
            return self.stream.read(size)
        wanted = len(self._held) + self._body.reader.length
        if size is not None and size >= 0:
            wanted = min(wanted, size)
        buffer = bytearray(wanted)
        filled = 0
        with memoryview(buffer) as view:
            while filled < wanted:
                got = self.readinto(view[filled:])
                if not got:
                    break
                filled += got
        del buffer[filled:]
        return bytes(buffer)

    def readable(self) -> bool:
        return True

    def _take_read_ahead(self) -> memoryview:
        """The body's bytes gunicorn holds, taken out of its buffers (once)."""
        if self._held is None:
            body, reader = self._body, self._body.reader
            unreader = reader.unreader
            held = body.buf.getvalue()  # taken from the reader, not yet handed to the application
            body.buf = io.BytesIO()
            read_ahead = unreader.buf.getvalue()
            unreader.buf = io.BytesIO()
            ours, next_request = read_ahead[:reader.length], read_ahead[reader.length:]
            if next_request:
                unreader.unread(next_request)
            reader.length -= len(ours)
            self._held = memoryview(held + ours)
        return self._held

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` with the body's next bytes (as many as one receive gives); 0 at its
        end. A client that goes away or stalls raises ``ClientDisconnected``."""
        with memoryview(buffer) as target, target.cast("B") as view:
            if not len(view):
                return 0
            held = self._take_read_ahead()
            if held:
                count = min(len(view), len(held))
                view[:count] = held[:count]
                self._held = held[count:]
                return count
            reader = self._body.reader
            if reader.length <= 0:
                return 0
            try:
                got = self._sock.recv_into(view, min(len(view), reader.length))
            except TimeoutError:
                self._body.failed = True
                raise ClientDisconnected("The upload stalled and was abandoned.") from None
            except BaseException:
                self._body.failed = True
                raise
            if not got:
                self._body.failed = True
                raise ClientDisconnected("The upload was interrupted before its end.")
            reader.length -= got
            return got

    def drain_into(self, fd: int) -> int:
        held = self._take_read_ahead()
        self._held = held[len(held):]
        try:
            moved = write_all(fd, held)
            return moved + self._splice(fd)
        except BaseException:
            self._body.failed = True  # where the next request starts is unknown: do not reuse
            raise

    def _splice(self, fd: int) -> int:
        reader, source = self._body.reader, self._sock.fileno()
        timeout = self._sock.gettimeout()
        moved = 0
        waiting = select.poll()
        waiting.register(source, select.POLLIN)
        pipe_out, pipe_in = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:  # a lower limit for this user: the default pipe still works
                pass
            while reader.length > 0:
                try:
                    got = os.splice(source, pipe_in, min(reader.length, PIPE_BYTES))
                except BlockingIOError:  # a socket with a timeout is non-blocking underneath
                    if not waiting.poll(None if timeout is None else timeout * 1000):
                        raise ClientDisconnected("The upload stalled and was abandoned.") \
                            from None
                    continue
                if got == 0:
                    raise ClientDisconnected("The upload was interrupted before its end.")
                reader.length -= got
                moved += got
                while got:
                    got -= os.splice(pipe_out, fd, got)
        finally:
            os.close(pipe_out)
            os.close(pipe_in)
        return moved


def spliceable(environ: dict, stream):
    """``stream`` as a :class:`SplicedBody` where the request allows it, else unchanged."""
    sock = environ.get("gunicorn.socket")
    # An ssl.SSLSocket (TLS) carries encrypted bytes: only a plain socket is spliced.
    if sock is None or type(sock) is not socket.socket or not BODY.usable:
        return stream
    return _spliced(environ.get("wsgi.input"), stream, sock)


def _spliced(body, stream, sock: socket.socket):
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import Unreader

    # The request's own objects are what the probe found (a chunked body is another reader).
    if not (isinstance(body, Body) and isinstance(body.buf, io.BytesIO)
            and isinstance(getattr(body, "failed", None), bool)  # set: do not reuse the socket
            and isinstance(body.reader, LengthReader) and isinstance(body.reader.length, int)
            and isinstance(body.reader.unreader, Unreader)
            and isinstance(body.reader.unreader.buf, io.BytesIO)):
        return stream
    return SplicedBody(stream, body, sock)


def _probe_gunicorn_body() -> str | None:
    """Parse a request with the installed gunicorn on a socket pair and read its body through
    ``read``, ``readinto`` and ``drain_into`` (bytes held by gunicorn, then from the socket):
    None if every byte arrives in order and the pipelined request after it still parses."""
    if not hasattr(os, "splice") or fcntl is None:
        return "splice(2) is not available on this system"
    import tempfile

    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser

    body = bytes(range(256)) * 300  # more than gunicorn reads ahead with the headers
    ours, theirs = socket.socketpair()
    with ours, theirs, tempfile.TemporaryFile() as target:
        theirs.sendall(f"PUT /probe HTTP/1.1\r\nHost: probe\r\nContent-Length: {len(body)}"
                       f"\r\n\r\n".encode() + body + b"GET /next HTTP/1.1\r\nHost: probe\r\n\r\n")
        ours.settimeout(5)
        config = Config()
        parser = RequestParser(config, ours, ("probe", 0))
        _, environ = wsgi.create(next(parser), ours, ("probe", 0), ("probe", 0), config)
        stream = _spliced(environ["wsgi.input"], environ["wsgi.input"], ours)
        if not isinstance(stream, SplicedBody):
            return ("gunicorn's request body is not the Body (buf, failed), LengthReader and "
                    "Unreader expected")
        head = stream.read(1000)
        part, filled = bytearray(20_000), 0  # the held bytes, then the socket's
        with memoryview(part) as view:
            while filled < len(part) and (got := stream.readinto(view[filled:])):
                filled += got
        stream.drain_into(target.fileno())
        target.seek(0)
        if head + part[:filled] + target.read() != body:
            return "the body read past gunicorn differs from what was sent"
        if next(parser).path != "/next":
            return "the request after the body did not parse"
    return None


#: gunicorn's private request body, read past for zero-copy uploads
BODY = Adapter("gunicorn-body", _probe_gunicorn_body,
               internal="gunicorn's Body.buf, LengthReader and Unreader read-ahead",
               fallback="gunicorn's wsgi.input stream")
