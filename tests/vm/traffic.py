"""Traffic sources for the VM tests: conftest's traffic() runs them in a thread of the
test's own process (in a netns), `python -m tests.vm.traffic ...` from a shell."""

import argparse
import socket
import time


def pattern(n: int, start: int = 0) -> bytes:
    """The deterministic payload stream: byte i is i % 251."""
    return bytes((start + i) % 251 for i in range(n))


def send_udp(dst: str, port: int, count: int, size: int, pace: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    for i in range(count):
        payload = i.to_bytes(4, "big") + pattern(max(size - 4, 0))
        while True:
            try:
                s.sendto(payload, (dst, port))
                break
            except (BlockingIOError, OSError):
                time.sleep(0.001)
        if pace and i % pace == pace - 1:
            time.sleep(0.002)
    s.close()


def send_tcp(dst: str, port: int, nbytes: int) -> None:
    s = socket.create_connection((dst, port), timeout=30)
    s.sendall(pattern(nbytes))
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tests.vm.traffic")
    sub = ap.add_subparsers(dest="kind", required=True)
    u = sub.add_parser("udp")
    u.add_argument("--dst", required=True)
    u.add_argument("--port", type=int, default=9999)
    u.add_argument("--count", type=int, default=1)
    u.add_argument("--size", type=int, default=64)
    u.add_argument("--pace", type=int, default=100, help="pause briefly every N datagrams")
    t = sub.add_parser("tcp")
    t.add_argument("--dst", required=True)
    t.add_argument("--port", type=int, default=9998)
    t.add_argument("--bytes", type=int, default=1 << 20)
    return ap


def run(a: argparse.Namespace) -> None:
    if a.kind == "udp":
        send_udp(a.dst, a.port, a.count, a.size, a.pace)
    else:
        send_tcp(a.dst, a.port, a.bytes)


def main() -> None:
    run(parser().parse_args())


if __name__ == "__main__":
    main()
