"""A port nothing listens on now, for a server started a moment later: the bench's and the Python suites'
(as `FreePort.find()` in Swift). Chosen below the kernel's ephemeral range, because a port from there
(what binding port 0 gives) can become an outgoing connection's local port before the server binds it.
Run as a script, it prints one."""
import pathlib
import secrets
import socket

LOWEST = 20000


def free_port():
    try:
        ephemeral_start = int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_start = 32768
    for _ in range(100 if ephemeral_start - LOWEST >= 1000 else 0):
        port = LOWEST + secrets.randbelow(ephemeral_start - LOWEST)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    print(free_port())
