"""Reading HTTP/1.1 answers off a socket, for the e2e tests' Python clients.

Imported by `idle_conns.py` (beside it) and by `tests/e2e_flood.rs`'s
embedded clients (run with this directory on PYTHONPATH).
"""


def read_head(s, bufsize=65536):
    """Reads an answer's head: its lines (status line first) and the body
    bytes that came with it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(bufsize)
        if not d:
            raise EOFError("closed by the peer before the answer")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n"), body


def read_answer(s, bufsize=65536):
    """Reads one whole answer, its body framed by Content-Length (none:
    empty): its status line and body, both bytes."""
    lines, body = read_head(s, bufsize)
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        d = s.recv(bufsize)
        if not d:
            raise EOFError("closed by the peer mid-body")
        body += d
    return lines[0], body
