#!/usr/bin/python3
"""Writes the seeds of tls_handshake_fuzz into corpus/tls_handshake_fuzz/ (run it again to
refresh them; the seeds are checked in, so the fuzz tests never need openssl).

Each seed is byte 0 (the listener setup and how the bytes are fed: see tls_handshake_fuzz.cpp)
followed by what a client sends: ClientHellos captured from `openssl s_client` (TLS 1.3 and 1.2,
SNI for each certificate and an unknown name, ALPN http/1.1 and h2 only, a client that only
speaks TLS 1.1) and from Python's ssl, the same cut short, split over two records or followed by
garbage, and bytes that are not TLS at all (HTTP, SSLv2, zeros, text).
"""

import os
import socket
import ssl
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "tls_handshake_fuzz")


def read_record(conn):
    """The first TLS record the client sends (header and body)."""
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data[:5 + int.from_bytes(data[3:5], "big")] if len(data) >= 5 else data


def s_client_hello(*args):
    """A ClientHello from `openssl s_client ARGS` against a listener that reads it and hangs up."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        got = {}

        def accept():
            conn, _ = srv.accept()
            with conn:
                got["hello"] = read_record(conn)

        t = threading.Thread(target=accept)
        t.start()
        subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, check=False)
        t.join(10)
        return got["hello"]


def python_hello(server_hostname):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def split_in_two_records(hello):
    """The same handshake message carried by two records (legal, rarely seen)."""
    body = hello[5:]
    half = len(body) // 2
    rec = lambda part: hello[:3] + len(part).to_bytes(2, "big") + part  # noqa: E731
    return rec(body[:half]) + rec(body[half:])


def main():
    os.makedirs(OUT, exist_ok=True)
    tls13_a = s_client_hello("-servername", "a.example", "-alpn", "http/1.1")
    tls12_b = s_client_hello("-tls1_2", "-servername", "b.example")
    unknown = s_client_hello("-servername", "unknown.example")
    wildcard = s_client_hello("-servername", "x.b.example", "-alpn", "h2,http/1.1")
    h2_only = s_client_hello("-servername", "a.example", "-alpn", "h2")
    no_sni = s_client_hello("-noservername")
    tls11 = s_client_hello("-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
    py = python_hello("a.example")
    # Byte 0: bits 0-2 setup (0-2 no ALPN: client certs none/optional/require; 3-5 the same with
    # ALPN http/1.1), bit 3 the client stalls instead of closing, bits 4-7 chunk size.
    seeds = {
        "tls13_sni_a_alpn_wss": b"\x03" + tls13_a,
        "tls13_sni_a_alpn_require": b"\x05" + tls13_a,
        "tls13_sni_a_bytewise": b"\x13" + tls13_a,
        "tls12_sni_b": b"\x00" + tls12_b,
        "tls12_sni_b_optional_chunks": b"\x31" + tls12_b,
        "unknown_name": b"\x03" + unknown,
        "wildcard_name_alpn": b"\x04" + wildcard,
        "alpn_h2_only_wss": b"\x03" + h2_only,
        "no_sni": b"\x00" + no_sni,
        "tls11_only": b"\x03" + tls11,
        "python_hello": b"\x04" + py,
        "half_hello_stalls": b"\x0b" + tls13_a[:len(tls13_a) // 2],
        "half_hello_closes": b"\x03" + tls13_a[:len(tls13_a) // 2],
        "record_header_only": b"\x03" + tls13_a[:5],
        "hello_in_two_records": b"\x23" + split_in_two_records(tls13_a),
        "hello_then_garbage": b"\x03" + tls13_a + b"\x17\x03\x03\x00\x10" + b"\xaa" * 16,
        "hello_then_alert": b"\x00" + tls12_b + b"\x15\x03\x03\x00\x02\x02\x28",
        "http_request": b"\x03GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
        "garbage_text": b"\x00" + b"garbage before the hello " * 8,
        "huge_record_length": b"\x03\x16\x03\x01\xff\xff" + b"\x01" * 64,
        "sslv2_hello": b"\x00\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + bytes(range(37)),
        "zeros": b"\x00" + b"\x00" * 32,
        "empty_closes": b"\x00",
        "empty_stalls": b"\x08",
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
