#!/usr/bin/env python3
"""Stand-in for netlab's built-in servers in an exported script (standard library only).

  standin.py http ADDR STATUS BODYFILE   every request gets STATUS and the file's bytes
  standin.py dns ADDR [NAME=IP ...]      A/AAAA for the names given, NXDOMAIN for others
  standin.py udp-echo ADDR               every datagram goes back to its sender
  standin.py udp-send ADDR               a datagram to ADDR; exit 0 once its echo is back
                                         (within 1 s), 1 when none came or ICMP refused it
  standin.py sink ADDR SECONDS           netlab's TCP sink: counts what each connection
                                         sends for SECONDS from its first read (not
                                         counted), then answers "BYTES SECONDS"
  standin.py send IP:PORT                sends to a sink as fast as the path takes it;
                                         prints the rate the sink measured, in bit/s
  standin.py ra LINK PREFIX... [default]  router advertisements on LINK, as radvd sends them:
                                         each PREFIX on-link and autonomous (SLAAC), the
                                         router a default router with "default"; repeated
                                         every 0.2 s and answering router solicitations

ADDR is IPv4:PORT or [IPv6]:PORT. An IPv6 socket is IPv6-only, as netlab binds it, so
[::]:80 and 0.0.0.0:80 can both be served.
"""
import http.server
import ipaddress
import select
import socket
import socketserver
import struct
import sys
import time

TTL = 60


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def bound(host, port, kind):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    return sock


def serve_http(addr, status, body):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            # Read any request body so the next request on the connection parses.
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = answer

        def log_message(self, *args):
            pass  # the script's output is its checks

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    host, port = parse_addr(addr)
    # Not bound by HTTPServer: the socket gets the options netlab uses (see bound).
    server = Server((host, port), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = bound(host, port, socket.SOCK_STREAM)
    server.server_address = server.socket.getsockname()
    server.socket.listen(128)
    server.serve_forever()


def read_name(packet, offset):
    """The question's name (lowercase, no trailing dot) and the offset after it."""
    labels = []
    while True:
        length = packet[offset]
        offset += 1
        if length == 0:
            return ".".join(labels).lower(), offset
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length


def dns_reply(records, packet):
    """The answer to one query, or None when the packet is not a query."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000:
        return None  # a response, not a query
    opcode = (flags >> 11) & 0xF
    head = 0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100)  # QR, AA, RD as asked

    def message(rcode, question=b"", answers=()):
        count = 1 if question else 0
        out = struct.pack("!HHHHHH", qid, head | rcode, count, len(answers), 0, 0) + question + b"".join(answers)
        if len(out) > 512:  # no EDNS: what does not fit is truncated (TC)
            out = struct.pack("!HHHHHH", qid, head | 0x0200 | rcode, count, 0, 0, 0) + question
        return out

    if opcode != 0:
        return message(4)  # NOTIMP
    if qdcount != 1:
        return message(1)  # FORMERR
    try:
        name, end = read_name(packet, 12)
        qtype, qclass = struct.unpack("!HH", packet[end:end + 4])
    except (IndexError, ValueError, struct.error):
        return message(1)
    question = packet[12:end + 4]
    if qclass not in (1, 255):
        return message(5, question)  # REFUSED
    known = [ip for n, ip in records if n == name]
    if not known:
        return message(3, question)  # NXDOMAIN
    answers = []
    for ip in known:
        if ip.version == 4 and qtype in (1, 255):
            rtype = 1
        elif ip.version == 6 and qtype in (28, 255):
            rtype = 28
        else:
            continue
        data = ip.packed
        # 0xC00C points at the question's name.
        answers.append(struct.pack("!HHHIH", 0xC00C, rtype, 1, TTL, len(data)) + data)
    return message(0, question, answers)


def serve_dns(addr, pairs):
    records = []
    for pair in pairs:
        name, _, ip = pair.partition("=")
        records.append((name.rstrip(".").lower(), ipaddress.ip_address(ip)))
    host, port = parse_addr(addr)
    sock = bound(host, port, socket.SOCK_DGRAM)
    while True:
        packet, peer = sock.recvfrom(4096)
        reply = dns_reply(records, packet)
        if reply is not None:
            try:
                sock.sendto(reply, peer)
            except OSError:
                pass  # the client went away


def serve_udp_echo(addr):
    host, port = parse_addr(addr)
    sock = bound(host, port, socket.SOCK_DGRAM)
    while True:
        data, peer = sock.recvfrom(65536)
        try:
            sock.sendto(data, peer)
        except OSError:
            pass


def udp_send(addr):
    host, port = parse_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    token = b"netlab-udp-probe"
    try:
        sock.connect((host, port))  # connected: ICMP errors come back as exceptions
        sock.settimeout(1.0)
        sock.send(token)
        while sock.recv(65536) != token:
            pass
    except OSError as e:  # refused (port unreachable), unreachable, or the timeout
        sys.exit(f"{addr}/udp: {e.strerror or e}")
    print(f"echo from {addr}/udp")


def serve_sink(addr, seconds):
    host, port = parse_addr(addr)
    server = bound(host, port, socket.SOCK_STREAM)
    server.listen(16)
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                measure(conn, seconds)
            except OSError:
                pass  # the sender went away


def measure(conn, seconds):
    """What the receiver got, not what the sender wrote: from the first read (a token
    bucket lets its burst through at once) for SECONDS."""
    if not conn.recv(1 << 18):
        return
    start = time.monotonic()
    end = start + seconds
    count = 0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            data = conn.recv(1 << 18)
        except socket.timeout:
            break
        if not data:
            break
        count += len(data)
    elapsed = min(time.monotonic() - start, seconds)
    conn.settimeout(None)
    conn.sendall(("%d %.9f\n" % (count, elapsed)).encode())
    # Read on until the sender closes: closing with unread data would reset it.
    while conn.recv(1 << 18):
        pass


def send(addr):
    host, port = parse_addr(addr)
    sock = socket.create_connection((host, port), timeout=5)
    sock.setblocking(False)
    chunk = bytes(1 << 17)
    answer = b""
    deadline = time.monotonic() + 60
    while not answer.endswith(b"\n"):
        if time.monotonic() > deadline:
            sys.exit("no answer from the sink")
        readable, writable, _ = select.select([sock], [sock], [], 1)
        if readable:
            data = sock.recv(100)
            if not data:
                sys.exit("the sink closed the connection")
            answer += data
        elif writable:
            try:
                sock.send(chunk)
            except BlockingIOError:
                pass
    sock.close()
    count, elapsed = answer.split()
    print(round(int(count) * 8 / float(elapsed)))


def serve_ra(link, args):
    default = "default" in args
    prefixes = [ipaddress.IPv6Network(a, strict=False) for a in args if a != "default"]
    ifindex = socket.if_nametoindex(link)
    with open("/sys/class/net/%s/address" % link) as f:
        mac = bytes(int(h, 16) for h in f.read().strip().split(":"))
    packet = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800 if default else 0, 0, 0)
    packet += bytes([1, 1]) + mac
    for p in prefixes:
        packet += struct.pack("!BBBBIII", 3, 4, p.prefixlen, 0xC0, 86400, 14400, 0) + p.network_address.packed
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, link.encode())
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    group = socket.inet_pton(socket.AF_INET6, "ff02::2") + struct.pack("@I", ifindex)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
    # linux/icmpv6.h ICMPV6_FILTER: a bit set blocks that type; only solicitations pass.
    blocked = [0xFFFFFFFF] * 8
    blocked[133 >> 5] &= ~(1 << (133 & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("@8I", *blocked))
    sock.settimeout(0.2)
    while True:
        try:
            sock.sendto(packet, ("ff02::1", 0, 0, ifindex))
        except OSError:
            pass  # the link-local source is still tentative: the next round
        try:
            sock.recv(1500)
        except socket.timeout:
            pass


def main(argv):
    if len(argv) >= 5 and argv[1] == "http":
        with open(argv[4], "rb") as f:
            body = f.read()
        serve_http(argv[2], int(argv[3]), body)
    elif len(argv) >= 3 and argv[1] == "dns":
        serve_dns(argv[2], argv[3:])
    elif len(argv) == 3 and argv[1] == "udp-echo":
        serve_udp_echo(argv[2])
    elif len(argv) == 3 and argv[1] == "udp-send":
        udp_send(argv[2])
    elif len(argv) == 4 and argv[1] == "sink":
        serve_sink(argv[2], float(argv[3]))
    elif len(argv) == 3 and argv[1] == "send":
        send(argv[2])
    elif len(argv) >= 4 and argv[1] == "ra":
        serve_ra(argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
