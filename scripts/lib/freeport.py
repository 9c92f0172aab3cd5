#!/usr/bin/python3
"""Print N distinct free TCP ports on 127.0.0.1, one per line.

Usage: freeport.py [N]

Each candidate is checked by actually binding it on 127.0.0.1 (no SO_REUSEADDR,
so a port held by a listener on 0.0.0.0 or in TIME_WAIT counts as busy). All
sockets stay open until N ports are found, so the ports printed are distinct.

Why not simply bind port 0?  The kernel hands out port-0 binds from the
ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 here), the same pool
it uses for the source port of every outgoing connection.  Between the moment
we pick a port and the moment etcd/Swift binds it, the proxy's connections to
the object servers, curl health checks, etc. can grab it, and the service then
fails with EADDRINUSE.  So we draw random candidates from below the ephemeral
range (default 20000..low-1) and fall back to port 0 only if that fails.
"""
import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def try_bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    low = 20000
    high = ephemeral_low() - 1
    held = []
    ports = []
    if high - low > 10 * n:
        candidates = random.sample(range(low, high + 1), min(high - low + 1, 50 * n + 100))
        for port in candidates:
            if len(ports) == n:
                break
            s = try_bind(port)
            if s is not None:
                held.append(s)
                ports.append(port)
    while len(ports) < n:  # fallback: let the kernel choose
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        held.append(s)
        if port not in ports:
            ports.append(port)
    for s in held:
        s.close()
    print("\n".join(str(p) for p in ports))


if __name__ == "__main__":
    main()
