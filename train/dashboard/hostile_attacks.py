"""The hostile clients of hostile_clients.py, each a thread that records
what it did in a `Stats`:

  * `flood`: connections that send nothing (or, trickling, a slowloris:
    a request line, then one header line every 2 s), each opened again
    when the server closes it;
  * `poller`: GETs of a list of targets (with their headers) in turn,
    at a rate or back to back.

`start_attack` starts the eight of `hostile_clients.py attack` against
http://127.0.0.1:PORT/ (never another host), `end_attack` stops them and
returns what each did. Stdlib only.
"""

import resource
import socket
import sys
import threading
import time

HOST = '127.0.0.1'


class Stats:
    """What one client did (its thread alone writes it)."""

    def __init__(self, name):
        self.name = name
        self.requests = 0
        self.bytes = 0
        self.errors = 0
        self.error_kinds = {}  # e.g. "ConnectionResetError": 2
        self.slowest = 0.0
        self.opened = 0  # connections, for the floods
        self.closed_by_server = 0
        self.ready = threading.Event()  # set once the client has begun

    def line(self):
        parts = [f'{self.name:<22}']
        if self.requests:
            parts.append(f'{self.requests:6d} requests, '
                         f'{self.bytes / 1e6:8.1f} MB, slowest '
                         f'{self.slowest * 1e3:7.1f} ms')
        if self.opened:
            parts.append(f'{self.opened:6d} connections opened, '
                         f'{self.closed_by_server} closed by the server')
        kinds = ', '.join(f'{k} {n}' for k, n in sorted(
            self.error_kinds.items()))
        parts.append(f'{self.errors} errors' + (f' ({kinds})' if kinds else ''))
        return '  '.join(parts)

    def error(self, what):
        self.errors += 1
        self.error_kinds[what] = self.error_kinds.get(what, 0) + 1


def request(port, target, headers, timeout=10):
    """One GET on a new connection; returns (status, body bytes)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        head = (f'GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n'
                f'{headers}Connection: close\r\n\r\n')
        s.sendall(head.encode())
        chunks = []
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    response = b''.join(chunks)
    end = response.find(b'\r\n\r\n')
    if end < 0:
        raise OSError('no response head')
    status = int(response[9:12])
    return status, len(response) - end - 4


def poller(port, targets, rate, stop, stats):
    """GETs `targets` in turn, `rate` a second (0: back to back)."""
    stats.ready.set()
    i = 0
    while not stop.is_set():
        target, headers = targets[i % len(targets)]
        i += 1
        start = time.monotonic()
        try:
            status, size = request(port, target, headers)
            stats.requests += 1
            stats.bytes += size
            if status != 200:
                stats.error(f'HTTP {status}')
        except OSError as e:
            stats.error(type(e).__name__ if e.errno else str(e))
        elapsed = time.monotonic() - start
        stats.slowest = max(stats.slowest, elapsed)
        if rate > 0:
            stop.wait(max(0.0, 1.0 / rate - elapsed))


def flood(port, count, trickle, stop, stats):
    """Holds `count` connections, opened again when the server closes
    them; with `trickle`, a slowloris: one header line every 2 s."""
    first_line = b'GET / HTTP/1.1\r\n'

    def open_one():
        try:
            s = socket.create_connection((HOST, port), timeout=5)
            s.setblocking(False)
            if trickle:
                s.send(first_line)
            stats.opened += 1
            return s
        except OSError as e:
            stats.error(type(e).__name__ if e.errno else str(e))
            return None

    conns = [open_one() for _ in range(count)]
    stats.ready.set()
    while not stop.wait(2.0 if trickle else 1.0):
        for i, s in enumerate(conns):
            alive = s is not None
            if alive:
                try:
                    alive = s.recv(4096) != b''  # b'': closed by the server
                except BlockingIOError:
                    pass
                except OSError:
                    alive = False
            if alive and trickle:
                try:
                    s.send(b'X-a: b\r\n')
                except OSError:
                    alive = False
            if not alive:
                if s is not None:
                    s.close()
                    stats.closed_by_server += 1
                conns[i] = open_one()
    for s in conns:
        if s is not None:
            s.close()


def start_attack(port, args):
    """Starts the eight clients; returns (stop event, threads, stats)."""
    stop = threading.Event()
    clients = []
    for n in range(2):
        clients.append((f'idle flood {n + 1}', flood,
                        (port, args.idle // 2, False)))
    for n in range(2):
        clients.append((f'slowloris {n + 1}', flood,
                        (port, args.slowloris // 2, True)))
    for n in range(2):
        clients.append((f'full-history poller {n + 1}', poller,
                        (port, [('/api/metrics?since=-1', '')], args.rate)))
    compression = [('/chart.js', 'Accept-Encoding: br\r\n'),
                   ('/chart.js', 'Accept-Encoding: gzip, deflate, br\r\n')]
    for n in range(2):
        clients.append((f'compression client {n + 1}', poller,
                        (port, compression, args.rate)))
    threads, stats = [], []
    for name, target, target_args in clients:
        s = Stats(name)
        t = threading.Thread(target=target, args=(*target_args, stop, s),
                             daemon=True)
        t.start()
        threads.append(t)
        stats.append(s)
    return stop, threads, stats


def end_attack(stop, threads, stats):
    stop.set()
    for t in threads:
        t.join(timeout=15)
    return [s.line() for s in stats]


def raise_file_limit(connections):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            sys.exit(f'the open-file limit {hard} is below {wanted}')
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
