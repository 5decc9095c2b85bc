#!/usr/bin/python3
"""End-to-end check of the gwx-register command line: the real binary as a process.

Usage: register_cli_test.py PATH/TO/gwx-register

Checks that --listen 127.0.0.1:0 prints exactly one `listening grpc://127.0.0.1:PORT` line with
a real, connectable port, that SIGTERM and SIGINT stop it promptly with exit 0, that --help
documents the options with their defaults, that bad input (unknown flag, bad address, bad value,
port in use) fails with one clear line and the documented exit code, that GWX_* environment
variables are honoured, and that a register without a token says so in one OPEN REGISTER warning
(and one with a token does not, nor logs it). Every wait has a deadline; nothing sleeps to synchronise.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LISTENING = re.compile(r"^listening grpc://127\.0\.0\.1:(\d+)$")


def fail(message):
    sys.stderr.write(f"FAIL: {message}\n")
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def run_to_end(binary, *args, env=None):
    """Runs the binary to completion; returns (exit code, stdout, stderr)."""
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=STOP_TIMEOUT,
                          env=env)
    return done.returncode, done.stdout, done.stderr


def read_line(proc, timeout):
    """One line of the process's stdout, or None when `timeout` passes or it ends first."""
    deadline = time.monotonic() + timeout
    line = b""
    fd = proc.stdout.fileno()
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            return None
        line += chunk
    return line.decode().rstrip("\n")


class register_process:
    """A running gwx-register; killed on exit from the `with` block whatever happens."""

    def __init__(self, binary, *args, env=None):
        self.proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.port = None

    def __enter__(self):
        line = read_line(self.proc, START_TIMEOUT)
        check(line is not None, "no line on stdout after start: " + self.stderr_so_far())
        match = LISTENING.match(line)
        check(match, f"first stdout line {line!r} is not 'listening grpc://127.0.0.1:PORT'")
        self.port = int(match.group(1))
        check(0 < self.port < 65536, f"bad port {self.port}")
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_so_far(self):
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self, sig):
        """Sends `sig`; returns (exit code, seconds taken, rest of stdout)."""
        begin = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"still running {STOP_TIMEOUT}s after signal {sig}")
        return code, time.monotonic() - begin, self.proc.stdout.read().decode()


def check_connectable(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def check_one_line_error(code, stdout, stderr, expected_code, what, mentions):
    check(code == expected_code, f"{what}: exit {code}, expected {expected_code}")
    lines = stderr.strip().splitlines()
    check(len(lines) == 1, f"{what}: expected one line on stderr, got {lines!r}")
    check(lines[0].startswith("gwx-register: "), f"{what}: line not prefixed: {lines[0]!r}")
    check(mentions in lines[0], f"{what}: {lines[0]!r} does not mention {mentions!r}")
    check(stdout == "", f"{what}: unexpected stdout {stdout!r}")


def main():
    if len(sys.argv) != 2:
        fail("usage: register_cli_test.py PATH/TO/gwx-register")
    binary = sys.argv[1]

    # Port 0: a real port is printed once, it accepts connections, and the stop is clean.
    for sig in (signal.SIGTERM, signal.SIGINT):
        with register_process(binary, "--listen", "127.0.0.1:0") as reg:
            check_connectable(reg.port)
            code, took, rest = reg.stop(sig)
            check(code == 0, f"exit {code} after signal {sig}, expected 0")
            check(took < 5.0, f"took {took:.1f}s to stop after signal {sig}")
            check("listening" not in rest, f"a second 'listening' line: {rest!r}")
            port = reg.port
            # Without a token the register is open, and says so once, loudly.
            warnings = [line for line in reg.stderr_so_far().splitlines()
                        if "OPEN REGISTER" in line]
            check(len(warnings) == 1, f"expected one OPEN REGISTER warning, got {warnings!r}")
            check("warn" in warnings[0].lower(), f"not a warning: {warnings[0]!r}")

    # The same port again right after a stop (a restart on the same address).
    with register_process(binary, "--listen", f"127.0.0.1:{port}") as reg:
        check(reg.port == port, f"restarted on {reg.port}, asked for {port}")
        # A second register on a port in use must refuse, not share it.
        code, out, err = run_to_end(binary, "--listen", f"127.0.0.1:{port}")
        check_one_line_error(code, out, err, 1, "port in use", str(port))
        reg.stop(signal.SIGTERM)

    # Options from the environment, as documented.
    env = dict(os.environ, GWX_LISTEN="127.0.0.1:0", GWX_TOKEN="env-token-value")
    with register_process(binary, env=env) as reg:
        check_connectable(reg.port)
        code, _, _ = reg.stop(signal.SIGTERM)
        check(code == 0, f"exit {code} with options from the environment")
        err = reg.stderr_so_far()
        check("OPEN REGISTER" not in err, f"warned of an open register with a token: {err!r}")
        check("env-token-value" not in err, "the token was logged")

    code, out, err = run_to_end(binary, "--help")
    check(code == 0, f"--help exit {code}")
    for needle in ("--listen", "127.0.0.1:7700", "--token", "--min-ttl-ms", "(=1000)",
                   "--max-ttl-ms", "(=60000)", "--config", "--log-level", "--auth-window-s",
                   "--legacy-auth-window-s", "(=0)", "--max-gateways", "(=1024)", "--max-gateways-per-peer",
                   "(=64)", "--max-entry-bytes", "(=4096)", "--peer-rate", "(=50)",
                   "--peer-burst", "(=100)", "--max-watch-backlog-bytes", "(=4194304)",
                   "--watch-write-timeout-s", "(=30)"):
        check(needle in out, f"--help does not mention {needle!r}")

    check_one_line_error(*run_to_end(binary, "--no-such-flag"), 2, "unknown flag",
                         "no-such-flag")
    check_one_line_error(*run_to_end(binary, "--listen", "nonsense"), 2, "bad address",
                         "nonsense")
    check_one_line_error(*run_to_end(binary, "--listen", "127.0.0.1:99999"), 2, "bad port",
                         "99999")
    check_one_line_error(*run_to_end(binary, "--min-ttl-ms", "soon"), 2, "bad number",
                         "min-ttl-ms")
    check_one_line_error(*run_to_end(binary, "--min-ttl-ms", "5000", "--max-ttl-ms", "1000"), 2,
                         "min above max", "--min-ttl-ms")
    check_one_line_error(*run_to_end(binary, "--auth-window-s", "0"), 2, "zero auth window",
                         "--auth-window-s")
    check_one_line_error(*run_to_end(binary, "--max-entry-bytes", "10000000"), 2,
                         "entry size above the message budget", "--max-entry-bytes")
    check_one_line_error(*run_to_end(binary, "--peer-rate", "-1"), 2, "negative rate",
                         "--peer-rate")
    check_one_line_error(*run_to_end(binary, "--watch-write-timeout-s", "0"), 2,
                         "zero watch write timeout", "--watch-write-timeout-s")
    print("register_cli_test: all checks passed")


if __name__ == "__main__":
    main()
