#!/usr/bin/python3
"""End-to-end check of configuration: every binary, every option, every source.

Usage: test_config.py --bin DIR [--timeout SECONDS]

For each of gwx-register, gwx-gateway, gwx-worker and gwxctl, runs the real binary with
--print-config and options spread over a config file, GWX_* environment variables and flags, in
every combination (each option sees file only, env only, flag only, each pair, all three and
none over the rounds), and checks that each option's printed value and source follow flag > env
> file > default, that a multi-value option (the gateway's --listen) takes all its values from
the winning source, that secrets show only as <set>/<unset> and their values never appear on
stdout or stderr, that GWX_CONFIG names the file, and that an unknown key, a malformed value or
a missing file fails with one line naming the file/variable/flag and the option (exit 2).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

BINARIES = ("gwx-register", "gwx-gateway", "gwx-worker", "gwxctl")
# Options that take several values (one config line or one flag per value).
MULTI_VALUE = {"gwx-gateway": {"listen"}}
# Options whose values the parser itself checks even under --print-config.
LOG_VALUES = {"log-level": ("debug", "warn", "error"), "log-format": ("json", "text", "json")}
LINE = re.compile(r"^(?P<name>[a-z0-9-]+) = (?P<value>.*?)\s+# (?P<source>.+)$")
SOURCES = ("file", "env", "flag")


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def env_name(option):
    return "GWX_" + option.upper().replace("-", "_")


def is_secret(option):
    return "secret" in option or "token" in option


def clean_environment():
    """The inherited environment without GWX_* variables (ctest or a shell may set some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}


def run(binary, args, env_extra=None, timeout=20):
    env = clean_environment()
    env.update(env_extra or {})
    done = subprocess.run([binary, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def parse_printed(text):
    """--print-config output → {option: [(value, source), ...]} in printed order."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        check(m, f"--print-config line not 'name = value   # source': {line!r}")
        out.setdefault(m["name"], []).append((m["value"], m["source"]))
    return out


def print_config(binary, args, env_extra=None):
    code, out, err = run(binary, [*args, "--print-config"], env_extra)
    check(code == 0, f"{os.path.basename(binary)} --print-config exit {code}: {err.strip()}")
    check(err == "", f"{os.path.basename(binary)} --print-config wrote to stderr: {err!r}")
    return parse_printed(out), out + err


def sample_values(option, default, prog, tag):
    """Three distinct valid values of `option` for file, env and flag (lists, for multi-value)."""
    if option in LOG_VALUES:
        return [[v] for v in LOG_VALUES[option]]
    if option in MULTI_VALUE.get(prog, ()):
        return [[f"ws://127.0.0.1:{1000 + tag}/file", f"tcp+line://127.0.0.1:{2000 + tag}"],
                [f"tcp+raw://127.0.0.1:{3000 + tag}"],
                [f"ws://127.0.0.1:{4000 + tag}/flag", f"tcp+frame://127.0.0.1:{5000 + tag}"]]
    if re.fullmatch(r"\d+", default):
        base = int(default)
        return [[str(base + 11 + tag)], [str(base + 22 + tag)], [str(base + 33 + tag)]]
    if is_secret(option):
        return [[f"file-{option}-value-{tag}"], [f"env-{option}-value-{tag}"],
                [f"flag-{option}-value-{tag}"]]
    return [[f"file-{option}-{tag}"], [f"env-{option}-{tag}"], [f"flag-{option}-{tag}"]]


def check_precedence(binary, tmp):
    """Every option over every combination of sources, in eight rounds."""
    prog = os.path.basename(binary)
    defaults, _ = print_config(binary, [])
    check(defaults, f"{prog}: --print-config printed no option")
    for name, lines in defaults.items():
        check(all(src.startswith("default") for _, src in lines),
              f"{prog}: with no config {name} comes from {lines}, expected default")
    options = [o for o in defaults if o != "config"]
    combos = [frozenset(s for i, s in enumerate(SOURCES) if mask >> i & 1) for mask in range(8)]
    for round_ in range(8):
        path = os.path.join(tmp, f"{prog}-{round_}.conf")
        file_lines, env, flags, expected = [], {}, [], {}
        for index, option in enumerate(options):
            layers = combos[(index + round_) % 8]
            values = sample_values(option, defaults[option][0][0], prog, round_)
            if "file" in layers:
                file_lines += [f"{option} = {v}" for v in values[0]]
            if "env" in layers:
                env[env_name(option)] = values[1][0]
            if "flag" in layers:
                for v in values[2]:
                    flags += [f"--{option}", v]
            if "flag" in layers:
                expected[option] = (values[2], "flag")
            elif "env" in layers:
                expected[option] = (values[1], "env " + env_name(option))
            elif "file" in layers:
                expected[option] = (values[0], "file " + path)
            else:
                expected[option] = ([v for v, _ in defaults[option]], defaults[option][0][1])
        with open(path, "w") as f:
            f.write(f"# round {round_}\n\n" + "\n".join(file_lines) + "\n")
        # The file is named by the flag in even rounds and by GWX_CONFIG in odd ones.
        if round_ % 2 == 0:
            args, config_source = ["--config", path, *flags], "flag"
        else:
            args, config_source = flags, "env GWX_CONFIG"
            env["GWX_CONFIG"] = path
        printed, raw = print_config(binary, args, env)
        check(printed.get("config") == [(path, config_source)],
              f"{prog} round {round_}: config printed as {printed.get('config')}, expected "
              f"{[(path, config_source)]}")
        check(set(printed) == set(defaults),
              f"{prog} round {round_}: printed options {sorted(printed)} differ from "
              f"{sorted(defaults)}")
        for option, (values, source) in expected.items():
            got = printed[option]
            if is_secret(option):
                shown = "<set>" if source.split()[0] in SOURCES else defaults[option][0][0]
                want = [(shown, source)]
            else:
                want = [(v, source) for v in values]
            check(got == want, f"{prog} round {round_}: {option} printed {got}, expected {want}")
        for option in options:
            if is_secret(option):
                for v in sample_values(option, "", prog, round_):
                    check(v[0] not in raw, f"{prog}: the value of {option} was printed")


def check_errors(binary, tmp):
    prog = os.path.basename(binary)
    defaults, _ = print_config(binary, [])
    numeric = next(o for o, lines in defaults.items() if re.fullmatch(r"\d+", lines[0][0]))

    def one_line_error(args, env, mentions, what):
        code, out, err = run(binary, args, env)
        lines = err.strip().splitlines()
        check(code == 2, f"{prog} {what}: exit {code}, expected 2 ({err.strip()!r})")
        check(len(lines) == 1, f"{prog} {what}: expected one line on stderr, got {lines!r}")
        check(lines[0].startswith(prog + ": "), f"{prog} {what}: not prefixed: {lines[0]!r}")
        for needle in mentions:
            check(needle in lines[0], f"{prog} {what}: {lines[0]!r} does not mention {needle!r}")
        check(out == "", f"{prog} {what}: unexpected stdout {out!r}")

    unknown = os.path.join(tmp, f"{prog}-unknown.conf")
    with open(unknown, "w") as f:
        f.write(f"# a comment\n{numeric} = 5\nno-such-option = 1\n")
    one_line_error(["--config", unknown, "--print-config"], {},
                   [unknown + ":3", "no-such-option"], "unknown key in the file")
    bad = os.path.join(tmp, f"{prog}-bad.conf")
    with open(bad, "w") as f:
        f.write(f"\n{numeric} = lots\n")
    one_line_error(["--print-config"], {"GWX_CONFIG": bad}, [bad + ":2", numeric, "lots"],
                   "malformed value in the file")
    one_line_error(["--print-config"], {env_name(numeric): "many"},
                   [env_name(numeric), numeric], "malformed value in the environment")
    one_line_error([f"--{numeric}", "x7", "--print-config"], {}, [f"--{numeric}", "x7"],
                   "malformed flag value")
    one_line_error(["--config", os.path.join(tmp, "missing.conf"), "--print-config"], {},
                   ["missing.conf"], "missing config file")
    one_line_error(["--no-such-flag", "--print-config"], {}, ["no-such-flag"], "unknown flag")
    if prog == "gwx-gateway":
        # Listener URLs are checked like at start-up: an unknown scheme, a bad address or a bad
        # listener option fails with one line naming the URL, whichever source it came from.
        for url, needle, what in (
                ("foo://127.0.0.1:9000", "foo", "unknown listener scheme"),
                ("ws//127.0.0.1:9000", "ws//127.0.0.1:9000", "listener URL without ://"),
                ("ws://127.0.0.1/", "ws://127.0.0.1/", "listener without a port"),
                ("ws://127.0.0.1:99999/", "99999", "listener port out of range"),
                ("tcp+line://127.0.0.1:9000/path", "path", "path on a TCP listener"),
                ("ws://127.0.0.1:9000/?max_message=0", "max_message", "bad listener option"),
                ("ws://127.0.0.1:9000/?max_message=66060289", "max_message",
                 "max_message over what a link frame carries"),
                ("ws://127.0.0.1:9000/?nonsense=1", "nonsense", "unknown listener option")):
            one_line_error(["--listen", url, "--print-config"], {}, [needle], what)
            one_line_error(["--print-config"], {env_name("listen"): url}, [needle], what + " (env)")
        one_line_error(["--max-message", "66060289", "--print-config"], {}, ["--max-message"],
                       "--max-message over what a link frame carries")
        printed, _ = print_config(binary, ["--listen", "ws://127.0.0.1:9000/?max_message=64"])
        check(printed["listen"][0][0] == "ws://127.0.0.1:9000/?max_message=64",
              f"{prog}: a good listener URL printed as {printed['listen']}")
    # Unknown GWX_* variables belong to other tools: ignored.
    printed, _ = print_config(binary, [], {"GWX_NO_SUCH_OPTION": "1", "GWX_BIN": "/tmp"})
    check("no-such-option" not in printed, f"{prog}: an unknown GWX_ variable became an option")
    # A secret's value never appears in an error either (the file names the key, not the value).
    secrets = [o for o in defaults if is_secret(o)]
    check(secrets, f"{prog}: no secret or token option to check")
    leaky = os.path.join(tmp, f"{prog}-leaky.conf")
    with open(leaky, "w") as f:
        f.write(f"{secrets[0]} = hunter2-secret-value\nno-such-option = 1\n")
    code, out, err = run(binary, ["--config", leaky, "--print-config"])
    check(code == 2 and "hunter2" not in out + err, f"{prog}: secret leaked: {out + err!r}")


def parse_args():
    """--bin DIR (or $GWX_BIN) and --timeout SECONDS, as gwx_e2e_test passes them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("GWX_BIN"), help="directory of the binaries")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if not args.bin:
        ap.error("--bin DIR (or GWX_BIN) is required")
    return args


def main():
    args = parse_args()
    deadline = time.monotonic() + args.timeout
    failed = False
    with tempfile.TemporaryDirectory(prefix="gwx-config-") as tmp:
        for prog in BINARIES:
            binary = os.path.join(args.bin, prog)
            try:
                check(os.access(binary, os.X_OK), f"{binary} is missing")
                check_precedence(binary, tmp)
                check_errors(binary, tmp)
                print(f"{prog}: precedence, sources, secrets and errors ok", flush=True)
            except (Failure, subprocess.TimeoutExpired) as e:
                print(f"FAIL {prog}: {e}", flush=True)
                failed = True
            if time.monotonic() > deadline:
                print("FAIL: over the deadline", flush=True)
                sys.exit(1)
    if failed:
        sys.exit(1)
    print("test_config: all checks passed")


if __name__ == "__main__":
    main()
