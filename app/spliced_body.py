"""Zero-copy uploads to local disk: the rest of a request body moves from gunicorn's socket into
the file with splice(2), inside the kernel.

gunicorn hands the application a body (``wsgi.input``) that copies each byte through Python
several times: out of the socket, through its own buffers and through werkzeug's size limit.
Writing the bytes to a file is one more copy. On Linux the kernel can move them from the socket
into the file without any of that, which roughly doubles how fast a large upload lands on local
disk (``benchmarks/storage_throughput.py``) and leaves the CPU to the rest of the platform.

It is done only where it is safe: a plain (not TLS) HTTP/1.1 connection served by gunicorn, a
body with a Content-Length, and Linux. Everything else (the development server, the test
client, chunked bodies, TLS, HTTP/2, other systems) keeps the ordinary stream, and so do the
cloud backends, which only ever call ``read``.
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

#: bytes moved per splice(2) call, and the pipe's capacity (Linux's largest for a normal user):
#: the default 64 KiB pipe halves the speed
PIPE_BYTES = 1024 * 1024


def write_all(fd: int, data: bytes) -> int:
    view, done = memoryview(data), 0
    while done < len(view):
        done += os.write(fd, view[done:])
    return done


class SplicedBody:
    """A request body that reads like ``stream`` and can also move all its remaining bytes into
    a file descriptor with :meth:`drain_into` (the protocol ``LocalStorage.upload`` looks for).

    ``body`` is gunicorn's ``wsgi.input`` and ``sock`` the connection's socket. The bytes
    gunicorn has already taken from the socket (its read-ahead) are written first, then the
    rest is spliced. Bytes of a next, pipelined request stay in gunicorn's buffer, and the body
    is marked as read, so a kept-alive connection goes on with the next request.
    """

    def __init__(self, stream, body, sock: socket.socket):
        self.stream, self._body, self._sock = stream, body, sock

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def readable(self) -> bool:
        return True

    def drain_into(self, fd: int) -> int:
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
        try:
            moved = write_all(fd, held) + write_all(fd, ours)
            return moved + self._splice(fd)
        except BaseException:
            body.failed = True  # where the next request starts is unknown: do not reuse
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
    body = environ.get("wsgi.input")
    # An ssl.SSLSocket (TLS) carries encrypted bytes: only a plain socket is spliced.
    if not hasattr(os, "splice") or fcntl is None or type(sock) is not socket.socket:
        return stream
    try:
        from gunicorn.http.body import Body, LengthReader
        from gunicorn.http.unreader import Unreader
    except ImportError:
        return stream
    # The attributes drain_into relies on, checked so that another gunicorn falls back safely.
    if not (isinstance(body, Body) and isinstance(body.buf, io.BytesIO)
            and isinstance(body.reader, LengthReader) and isinstance(body.reader.length, int)
            and isinstance(body.reader.unreader, Unreader)
            and isinstance(body.reader.unreader.buf, io.BytesIO)):
        return stream
    return SplicedBody(stream, body, sock)
