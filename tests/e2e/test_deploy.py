#!/usr/bin/python3
"""Checks deploy/ against the real binaries: configs, systemd units, Docker, Kubernetes, Prometheus.

Usage: test_deploy.py --bin DIR [--timeout SECONDS]   (Debian: python3-yaml, systemd, prometheus)

- deploy/config/*.conf: each sample's keys are exactly the binary's options, each key documents
  its real default, and the binary accepts the sample (--print-config shows the file's values).
- deploy/systemd: `systemd-analyze verify` passes (in a scratch root holding the built binaries
  at their ExecStart paths) with no warning; every unit runs as the dedicated user with its
  sample config, stops with SIGTERM within a bound longer than the binary's own drain/shutdown
  bound; the worker reloads by draining and is restarted.
- deploy/docker: the Dockerfile builds with the README's command (tools/quickstart.sh build,
  whose build step is the README's `cmake --preset default && cmake --build --preset default`),
  its runtime stage installs the package of every shared library the built binaries load;
  compose.yaml parses, its services agree on ports, addresses and image.
- deploy/k8s: every manifest parses; one image everywhere; every container's command line and
  GWX_* environment is accepted by the binary (run with --print-config); container ports match
  the addresses the binaries listen on; probes, Services and Prometheus annotations name
  existing container ports; the register list names every register replica; secrets come from
  a Secret, never argv; grace periods cover preStop plus the drain.
- deploy/prometheus: promtool accepts the one-machine scrape config, whose targets are the
  sample configs' metrics ports.
- deploy/README.md mentions every file of deploy/.
"""

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import yaml
except ImportError:  # reported as a failure, never a skip
    sys.stderr.write("test_deploy: the yaml module is missing (Debian: apt-get install "
                     "python3-yaml); run with /usr/bin/python3\n")
    sys.exit(1)

# The --print-config helpers of the configuration test (same folder).
from test_config import Failure, check, is_secret, parse_args, parse_printed, run  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
BINARIES = ("gwx-register", "gwx-gateway", "gwx-worker", "gwxctl")
# Options announced by a change in progress (the metrics endpoint, issue 4 point 1): deploy files
# may already use them. While a binary lacks one, it is left out of the checks that run that
# binary, and said so; once the binary has it, it is checked like any other option.
PENDING_OPTIONS = {"metrics"}
# Defaults that depend on the machine; the sample documents them in words (<...>).
COMPUTED_DEFAULTS = {("gwx-gateway", "name"), ("gwx-gateway", "threads")}
MULTI_VALUE = {("gwx-gateway", "listen")}
SETTING = re.compile(r"^(#?)([a-z][a-z0-9-]*)\s*=\s*(.*?)\s*$")


def log(message):
    print(message, flush=True)


def read(path):
    with open(path) as f:
        return f.read()


def port_of(address):
    """The port of HOST:PORT, [v6]:PORT or a URL scheme://HOST:PORT/..."""
    m = re.search(r":(\d+)(?:/|\?|$)", address)
    check(m, f"no port in {address!r}")
    return int(m.group(1))


class Binaries:
    """The built binaries, and what their own option parser says."""

    def __init__(self, bin_dir):
        self.dir = bin_dir
        self._defaults = {}
        self._help = {}

    def path(self, prog):
        p = os.path.join(self.dir, prog)
        check(os.access(p, os.X_OK), f"{p} is missing")
        return p

    def run(self, prog, args, env=None):
        return run(self.path(prog), args, env)

    def print_config(self, prog, args, env=None, what=""):
        """{option: [(value, source)]} of `prog args --print-config`; fails unless accepted."""
        code, out, err = self.run(prog, [*args, "--print-config"], env)
        check(code == 0, f"{prog} refuses {what or args}: {err.strip()}")
        return parse_printed(out)

    def defaults(self, prog):
        if prog not in self._defaults:
            self._defaults[prog] = self.print_config(prog, [])
        return self._defaults[prog]

    def options(self, prog):
        """Every option a config file or the environment may set."""
        return set(self.defaults(prog)) - {"config"}

    def help_flags(self, prog):
        if prog not in self._help:
            code, out, _ = self.run(prog, ["--help"])
            check(code == 0, f"{prog} --help exit {code}")
            self._help[prog] = set(re.findall(r"^\s+(?:-\w \[ )?--([a-z0-9-]+)", out, re.M))
        return self._help[prog]

    def has(self, prog, option):
        return option in self.help_flags(prog)


def split_flags(args):
    """['--a=1', '--b', '2', 'x'] → [('a', '1'), ('b', '2')], positional words left out."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                name, value = a[2:].split("=", 1)
            else:
                name, value = a[2:], args[i + 1] if i + 1 < len(args) else ""
                i += 1
            out.append((name, value))
        i += 1
    return out


def effective(binaries, prog, args, env, what):
    """The effective config of `prog` with `args` and `env`, pending options taken from args.

    Runs the binary itself, so an unknown flag, a bad value or an unknown GWX_ name fails here.
    Returns {option: [values]} and {option: source}.
    """
    kept, pending = [], {}
    for name, value in split_flags(args):
        if name in PENDING_OPTIONS and not binaries.has(prog, name):
            pending.setdefault(name, []).append(value)
            log(f"  {what}: --{name} is pending in {prog}; not checked by the binary yet")
        else:
            kept += [f"--{name}", value]
    env = {k: v for k, v in env.items() if k.startswith("GWX_")}  # others are helpers (POD_IP)
    for var in list(env):
        option = var[4:].lower().replace("_", "-")
        check(option in binaries.options(prog) or option in PENDING_OPTIONS,
              f"{what}: environment {var} is no option of {prog}")
        if option in PENDING_OPTIONS and not binaries.has(prog, option):
            pending[option] = [env.pop(var)]
    printed = binaries.print_config(prog, kept, env, what)
    for name, value in split_flags(kept):
        check(name in printed and printed[name][0][1] == "flag",
              f"{what}: --{name} is not taken as a flag by {prog}: {printed.get(name)}")
    values = {k: [v for v, _ in lines] for k, lines in printed.items()}
    sources = {k: lines[0][1] for k, lines in printed.items()}
    for name, vals in pending.items():
        values[name], sources[name] = vals, "pending"
    return values, sources


# --- sample configs -----------------------------------------------------------------------------

def parse_sample(path):
    """→ (entries [(commented, key, value, line)], {key: documented default})."""
    entries, documented, pending_default = [], {}, None
    for number, line in enumerate(read(path).splitlines(), 1):
        if line.startswith("# default:"):
            pending_default = line[len("# default:"):].strip()
            continue
        m = SETTING.match(line)
        if not m:
            continue
        commented, key, value = m.group(1) == "#", m.group(2), m.group(3)
        if key not in documented:
            check(pending_default is not None,
                  f"{path}:{number}: {key} has no '# default:' line above it")
            documented[key] = pending_default
        pending_default = None
        entries.append((commented, key, value, number))
    return entries, documented


def check_sample_configs(binaries):
    for prog in BINARIES:
        path = os.path.join(DEPLOY, "config", prog + ".conf")
        entries, documented = parse_sample(path)
        keys = set(documented)
        options = binaries.options(prog)
        missing = options - keys
        check(not missing, f"{path}: options of {prog} not in the sample: {sorted(missing)}")
        extra = keys - options
        check(extra <= PENDING_OPTIONS,
              f"{path}: keys that are no option of {prog}: {sorted(extra - PENDING_OPTIONS)}")
        for key in sorted(extra):
            log(f"  {prog}.conf: {key} is pending in {prog}")
            check(all(c for c, k, _, _ in entries if k == key),
                  f"{path}: pending option {key} must stay commented out")
        defaults = binaries.defaults(prog)
        for key, doc in documented.items():
            if key not in defaults:
                continue
            real = defaults[key][0][0]
            doc_value = "" if doc == "(empty)" else doc
            if (prog, key) in COMPUTED_DEFAULTS:
                check(doc.startswith("<") and doc.endswith(">"),
                      f"{path}: the default of {key} depends on the machine; describe it as <...>")
            else:
                check(doc_value == real,
                      f"{path}: {key} documents default {doc!r}, {prog} says {real!r}")
        for key in keys:
            count = sum(1 for c, k, _, _ in entries if k == key and not c)
            check(count <= 1 or (prog, key) in MULTI_VALUE,
                  f"{path}: {key} is set {count} times")
            if is_secret(key):
                check(count == 0, f"{path}: {key} must not ship with a value (comment it out)")
        printed = binaries.print_config(prog, ["--config", path], what=f"its sample {path}")
        for commented, key, value, number in entries:
            if commented:
                continue
            want = [v for c, k, v, _ in entries if k == key and not c]
            got = printed.get(key, [])
            check([v for v, _ in got] == want and all(s == "file " + path for _, s in got),
                  f"{path}:{number}: {prog} reads {key} as {got}, expected {want} from the file")
        log(f"{prog}.conf: {len(keys)} keys, defaults documented, accepted by {prog}")


# --- systemd ------------------------------------------------------------------------------------

def read_unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       dict_type=dict, empty_lines_in_values=False)
    parser.optionxform = str
    # Repeated keys (SystemCallFilter=) are legal in units; keep the last, enough for the checks.
    parser.read_string(read(path))
    return parser


def seconds(value):
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    check(m, f"unsupported time span {value!r}")
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def check_systemd(binaries, tmp):
    unit_dir = os.path.join(DEPLOY, "systemd")
    units = {"gwx-register": "gwx-register.service", "gwx-gateway": "gwx-gateway.service",
             "gwx-worker": "gwx-worker@.service"}
    sysusers = read(os.path.join(unit_dir, "gwx.sysusers.conf"))
    users = set(re.findall(r"^u\s+(\S+)", sysusers, re.M))
    for prog, unit in units.items():
        path = os.path.join(unit_dir, unit)
        service = read_unit(path)["Service"]
        check(service.get("User") in users, f"{unit}: User= is not the user of gwx.sysusers.conf")
        exec_start = shlex.split(service["ExecStart"])
        check(exec_start[0] == f"/usr/local/bin/{prog}", f"{unit}: ExecStart runs {exec_start[0]}")
        check(exec_start[1:] == ["--config", f"/etc/gwx/{prog}.conf"],
              f"{unit}: ExecStart should only name /etc/gwx/{prog}.conf: {exec_start}")
        check(os.path.exists(os.path.join(DEPLOY, "config", prog + ".conf")),
              f"{unit}: no sample config for /etc/gwx/{prog}.conf")
        check(service.get("KillSignal") == "SIGTERM", f"{unit}: KillSignal= is not SIGTERM")
        stop = seconds(service.get("TimeoutStopSec", "90"))
        check(service.get("Restart") == "always", f"{unit}: Restart= is not always")
        for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
            check(key in service, f"{unit}: hardening option {key}= missing")
        # The unit must outlast the binary's own bound, else systemd kills it mid-drain.
        for option in ("drain-timeout-ms", "shutdown-timeout-ms"):
            defaults = binaries.defaults(prog)
            if option in defaults:
                bound = int(defaults[option][0][0]) / 1000
                check(stop > bound, f"{unit}: TimeoutStopSec={stop} is not above {prog}'s "
                                    f"{option} ({bound:g} s)")
    worker = read_unit(os.path.join(unit_dir, units["gwx-worker"]))["Service"]
    check(re.fullmatch(r"/bin/kill -(TERM|s TERM|SIGTERM) \$MAINPID", worker.get("ExecReload", "")),
          "gwx-worker@.service: ExecReload= must send SIGTERM to $MAINPID (drain, then restart)")
    check("drain-timeout-ms" in binaries.defaults("gwx-worker"),
          "gwx-worker has no --drain-timeout-ms: SIGTERM would not drain")

    # systemd-analyze verify checks ExecStart paths, so give it a root with the real binaries there.
    root = os.path.join(tmp, "root")
    for d in ("usr/local/bin", "etc/systemd/system", "usr/lib/systemd", "usr/bin"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.symlink("usr/bin", os.path.join(root, "bin"))
    for prog in BINARIES:
        dest = os.path.join(root, "usr/local/bin", prog)
        try:
            os.link(binaries.path(prog), dest)
        except OSError:
            shutil.copy2(binaries.path(prog), dest)
    for tool in ("kill", "sleep"):
        shutil.copy2(shutil.which(tool, path="/usr/bin:/bin"), os.path.join(root, "usr/bin"))
    system_units = next(p for p in ("/usr/lib/systemd/system", "/lib/systemd/system")
                        if os.path.isdir(p))
    shutil.copytree(system_units, os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
    for unit in units.values():
        shutil.copy2(os.path.join(unit_dir, unit), os.path.join(root, "etc/systemd/system"))
    analyze = shutil.which("systemd-analyze")
    check(analyze, "systemd-analyze is missing (Debian package systemd)")
    names = [u.replace("@.", "@1.") for u in units.values()]
    done = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *names],
                          capture_output=True, text=True, timeout=60, cwd=tmp)
    output = (done.stdout + done.stderr).strip()
    check(done.returncode == 0 and output == "",
          f"systemd-analyze verify {' '.join(names)}: exit {done.returncode}\n{output}")
    log(f"systemd: {', '.join(names)} verified")


# --- Docker -------------------------------------------------------------------------------------

def dockerfile_stages(path):
    """→ [(from, name, [(instruction, argument)])] with continuation lines joined."""
    text = re.sub(r"\\\n", " ", read(path))
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        instruction, argument = instruction.upper(), " ".join(argument.split())
        if instruction == "FROM":
            words = argument.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append((words[0], name, []))
        else:
            check(stages, f"{path}: {instruction} before FROM")
            stages[-1][2].append((instruction, argument))
    return stages


def quickstart_build_commands():
    """The commands of tools/quickstart.sh's build(), without output redirections or -j."""
    script = read(os.path.join(ROOT, "tools", "quickstart.sh"))
    m = re.search(r"^build\(\) \{\n(.*?)^\}", script, re.M | re.S)
    check(m, "tools/quickstart.sh has no build() function")
    commands = []
    for line in m.group(1).splitlines():
        line = re.sub(r"\s*[12]?>\s*/dev/null", "", line.strip())
        line = re.sub(r"\s+-j\S*", "", line)
        if line and not line.startswith("#"):
            commands.append(line)
    check(re.search(r"^\s*build\)\s*install_packages \"\$\{build_packages\[@\]\}\"; build ;;",
                    script, re.M),
          "tools/quickstart.sh: the 'build' verb should install the build packages and build")
    return commands


def runtime_packages_needed(files):
    """Debian packages of the shared libraries `files` load (libc6 is in every image)."""
    libs = {}
    for f in files:
        done = subprocess.run(["ldd", f], capture_output=True, text=True, timeout=30)
        check(done.returncode == 0, f"ldd {f} failed: {done.stderr}")
        for lib in re.findall(r"=> (/\S+)", done.stdout):
            libs.setdefault(lib, f)
    # dpkg knows each file under one spelling: /lib or /usr/lib (merged /usr), link or target.
    spellings = {}
    for lib in libs:
        candidates = {lib, os.path.realpath(lib)}
        candidates |= {p[4:] for p in candidates if p.startswith("/usr/")}
        candidates |= {"/usr" + p for p in candidates if not p.startswith("/usr/")}
        spellings[lib] = candidates
    every = sorted(set().union(*spellings.values()))
    done = subprocess.run(["dpkg", "-S", *every], capture_output=True, text=True, timeout=60)
    owner = {}
    for line in done.stdout.splitlines():
        package, _, path = line.partition(": ")
        for p in path.split(", "):
            owner[p.strip()] = package.split(":")[0]
    packages = set()
    for lib, candidates in spellings.items():
        found = {owner[c] for c in candidates if c in owner}
        check(found, f"no Debian package ships {lib} (loaded by {libs[lib]})")
        packages |= found
    return packages - {"libc6"}


def check_dockerfile(binaries):
    path = os.path.join(DEPLOY, "docker", "Dockerfile")
    stages = dockerfile_stages(path)
    check(len(stages) >= 2, f"{path}: expected a build stage and a runtime stage")
    build, runtime = stages[0], stages[-1]
    check(build[0] == "debian:12" and build[1], f"{path}: the build stage is not FROM debian:12 AS …")
    check(runtime[0] == "debian:12-slim", f"{path}: the runtime stage is not FROM debian:12-slim")
    runs = [arg for ins, arg in build[2] if ins == "RUN"]
    check(runs == ["bash tools/quickstart.sh build"],
          f"{path}: the build stage should run exactly the README's build, got {runs}")
    readme = read(os.path.join(ROOT, "README.md"))
    check("bash tools/quickstart.sh" in readme, "README.md does not use tools/quickstart.sh")
    by_hand = re.search(r"`(cmake --preset default && cmake --build --preset default)`", readme)
    check(by_hand, "README.md does not show `cmake --preset default && cmake --build --preset "
                   "default`")
    check(quickstart_build_commands() == by_hand.group(1).split(" && "),
          f"tools/quickstart.sh build() runs {quickstart_build_commands()}, the README "
          f"{by_hand.group(1)!r}")
    presets = read(os.path.join(ROOT, "CMakePresets.json"))
    check('"binaryDir": "${sourceDir}/build"' in presets, "the default preset no longer builds "
                                                          "into build/")
    workdir = [arg for ins, arg in build[2] if ins == "WORKDIR"][-1]
    copies = [arg for ins, arg in runtime[2] if ins == "COPY" and arg.startswith("--from=")]
    copied = {}
    for arg in copies:
        words = arg.split()[1:]
        for src in words[:-1]:
            check(src.startswith(f"{workdir}/build/bin/"), f"{path}: COPY of {src}, not from "
                                                           f"{workdir}/build/bin")
            copied[os.path.basename(src)] = words[-1]
    for prog in BINARIES:
        check(copied.get(prog) == "/usr/local/bin/", f"{path}: {prog} is not copied to "
                                                     "/usr/local/bin/")
    installs = " ".join(arg for ins, arg in runtime[2] if ins == "RUN" and "apt-get install" in arg)
    listed = set(re.findall(r"\b(lib[\w.+-]+|zlib1g|tini)\b", installs))
    files = [binaries.path(p) for p in BINARIES]
    files += [os.path.join(binaries.dir, n) for n in copied if n.endswith(".so")]
    needed = runtime_packages_needed(files)
    check(needed <= listed, f"{path}: the runtime stage lacks {sorted(needed - listed)}")
    entry = [arg for ins, arg in runtime[2] if ins == "ENTRYPOINT"]
    check(entry and "tini" in entry[-1] and "tini" in listed, f"{path}: tini should be PID 1")
    check(("USER", "gwx") in runtime[2], f"{path}: the runtime stage should run as user gwx")
    ignore = read(os.path.join(DEPLOY, "docker", "Dockerfile.dockerignore")).split()
    check("build" in ignore and ".git" in ignore, "Dockerfile.dockerignore must exclude build/")
    log(f"Dockerfile: builds with the README's commands; runtime has {len(needed)} packages")


def dockerfile_exposed():
    """The ports the Dockerfile EXPOSEs."""
    path = os.path.join(DEPLOY, "docker", "Dockerfile")
    return {int(p) for line in re.findall(r"^EXPOSE\s+([\d ]+)$", read(path), re.M)
            for p in line.split()}


def check_compose(binaries):
    path = os.path.join(DEPLOY, "docker", "compose.yaml")
    doc = yaml.safe_load(read(path))
    services = doc["services"]
    check({"register", "gateway", "worker"} <= set(services), f"{path}: services {list(services)}")
    images = {s["image"] for s in services.values()}
    check(images == {"gwx:latest"}, f"{path}: images {images}, expected gwx:latest everywhere")
    config = {}
    for name, service in services.items():
        command = service["command"]
        prog = command[0]
        check(prog in BINARIES, f"{path}: {name} runs {prog}")
        env = {k: "x" for k in service.get("environment", {})}
        check(not any(is_secret(n) for n, _ in split_flags(command[1:])),
                      f"{path}: {name} has a secret on its command line")
        config[name] = effective(binaries, prog, command[1:], env, f"compose {name}")[0]
        for secret in ("GWX_SECRET", "GWX_TOKEN"):
            value = service.get("environment", {}).get(secret)
            check(value is None or value.startswith("${"), f"{path}: {name} hardcodes {secret}")
    register_port = port_of(config["register"]["listen"][0])
    for name in ("gateway", "worker"):
        check(config[name]["register"] == [f"register:{register_port}"],
              f"{path}: {name} --register {config[name]['register']} is not register:"
              f"{register_port}")
    gateway = services["gateway"]
    ws = [u for u in config["gateway"]["listen"] if u.startswith("ws://")]
    check(ws and port_of(ws[0]) == 8080, f"{path}: the gateway has no ws listener on 8080")
    check("127.0.0.1:8080:8080" in gateway["ports"] or "8080:8080" in gateway["ports"],
          f"{path}: the gateway's ws port 8080 is not published as 8080")
    advertise = config["gateway"]["advertise"][0]
    network = next(iter(gateway["networks"]))
    ip = gateway["networks"][network]["ipv4_address"]
    check(advertise == f"{ip}:{port_of(config['gateway']['internal'][0])}",
          f"{path}: the gateway advertises {advertise}, its address is {ip}")
    subnet = doc["networks"][network]["ipam"]["config"][0]["subnet"]
    check(ip.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0],
          f"{path}: {ip} is outside {subnet}")
    check(services["worker"]["deploy"]["replicas"] == 2 and config["worker"]["app"] == ["chat"],
          f"{path}: expected 2 workers running the chat app")
    for name, port in (("register", register_port), ("gateway", 8080)):
        test = " ".join(services[name]["healthcheck"]["test"])
        check(f"/{port}" in test, f"{path}: {name}'s healthcheck does not probe port {port}")
    log("compose.yaml: services, ports, addresses and image agree")


# --- Kubernetes ---------------------------------------------------------------------------------

def k8s_documents():
    docs = []
    k8s = os.path.join(DEPLOY, "k8s")
    for name in sorted(os.listdir(k8s)):
        if name.endswith((".yaml", ".yml")):
            for doc in yaml.safe_load_all(read(os.path.join(k8s, name))):
                if doc:
                    check("kind" in doc and "apiVersion" in doc, f"{name}: a document without kind")
                    docs.append((name, doc))
    return docs


def container_port(container, ref):
    """The containerPort a probe or Service names (by name or number), or None."""
    for p in container.get("ports", []):
        if ref == p.get("name") or ref == p["containerPort"]:
            return p["containerPort"]
    return None


def k8s_env(container, what):
    """The container's environment with stand-ins for downward-API and Secret values."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
            env[e["name"]] = value
        else:
            source = e["valueFrom"]
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                env[e["name"]] = {"status.podIP": "10.1.2.3"}.get(path, "pod-name")
            else:
                check("secretKeyRef" in source, f"{what}: {e['name']} from {source}")
                env[e["name"]] = "secret-stand-in"
        if is_secret(e["name"].lower()):
            check("valueFrom" in e and "secretKeyRef" in e["valueFrom"],
                  f"{what}: {e['name']} must come from a Secret")
    return env


def check_k8s(binaries):
    docs = k8s_documents()
    exposed = dockerfile_exposed()
    workloads = [(f, d) for f, d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    services = [(f, d) for f, d in docs if d["kind"] == "Service"]
    kustomization = next(d for f, d in docs if d["kind"] == "Kustomization")
    listed = set(kustomization["resources"])
    for f in {f for f, _ in docs} - {"kustomization.yaml"}:
        check(f in listed, f"kustomization.yaml does not list {f}")
    images, by_prog, secret_names = set(), {}, set()
    for f, w in workloads:
        spec = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        check(w["spec"]["selector"]["matchLabels"].items() <= labels.items(),
              f"{f}: {w['metadata']['name']}'s selector does not match its pods")
        for c in spec["containers"]:
            what = f"{f} {w['metadata']['name']}/{c['name']}"
            images.add(c["image"])
            prog = os.path.basename(c["command"][0])
            check(c["command"][0] == f"/usr/local/bin/{prog}" and prog in BINARIES,
                  f"{what}: runs {c['command']}")
            args = c.get("args", [])
            check(not any(is_secret(n) for n, _ in split_flags(args)),
                  f"{what}: a secret on the command line")
            env = k8s_env(c, what)
            secret_names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                             if "secretKeyRef" in e.get("valueFrom", {})}
            values, sources = effective(binaries, prog, args, env, what)
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in c:
                    action = c[probe].get("tcpSocket") or c[probe].get("httpGet") or {}
                    check(container_port(c, action.get("port")) is not None,
                          f"{what}: {probe} port {action.get('port')} is no container port")
            for p in c.get("ports", []):
                check(p["containerPort"] in exposed,
                      f"{what}: port {p['containerPort']} is not EXPOSEd by the Dockerfile")
            annotations = w["spec"]["template"]["metadata"].get("annotations", {})
            if annotations.get("prometheus.io/scrape") == "true":
                port = int(annotations["prometheus.io/port"])
                check(container_port(c, "metrics") == port,
                      f"{what}: prometheus.io/port {port} is not the metrics container port")
                check(port_of(values["metrics"][0]) == port,
                      f"{what}: --metrics {values['metrics']} is not on port {port}")
            by_prog[prog] = (f, w, c, values, sources)
    names = {i.split(":")[0] for i in images}
    check(len(images) == 1 and names == {k["name"] for k in kustomization["images"]},
          f"images {images} differ (kustomization images: {kustomization['images']})")
    check(names == {"gwx"}, f"the image is {names}, Dockerfile and compose build 'gwx'")
    check(secret_names == {"gwx"}, f"secrets referenced: {secret_names}")
    check(set(by_prog) == {"gwx-register", "gwx-gateway", "gwx-worker"},
          f"workloads run {sorted(by_prog)}")

    for f, s in services:
        selected = [(wf, w) for wf, w in workloads
                    if s["spec"]["selector"].items() <=
                    w["spec"]["template"]["metadata"]["labels"].items()]
        check(len(selected) == 1, f"{f}: Service {s['metadata']['name']} selects {len(selected)} "
                                  "workloads")
        container = selected[0][1]["spec"]["template"]["spec"]["containers"][0]
        for p in s["spec"]["ports"]:
            check(container_port(container, p.get("targetPort", p["port"])) is not None,
                  f"{f}: Service port {p} targets no container port")

    # Register: replicas, listen port, and every replica named in the gateways' and workers' lists.
    rf, reg, rc, rvalues, _ = by_prog["gwx-register"]
    check(reg["spec"]["replicas"] == 2, f"{rf}: expected 2 register replicas")
    check(port_of(rvalues["listen"][0]) == container_port(rc, "grpc"),
          f"{rf}: --listen {rvalues['listen']} is not the grpc container port")
    check(rvalues["listen"][0].startswith("0.0.0.0:"), f"{rf}: the register must listen on 0.0.0.0")
    reg_service = next(s for _, s in services if s["spec"]["selector"].items() <=
                       reg["spec"]["template"]["metadata"]["labels"].items())
    if reg["kind"] == "StatefulSet":
        check(reg["spec"]["serviceName"] == reg_service["metadata"]["name"] and
              reg_service["spec"].get("clusterIP") == "None",
              f"{rf}: a StatefulSet needs its headless Service for per-replica names")
        service_port = reg_service["spec"]["ports"][0]["port"]
        expected = [f"{reg['metadata']['name']}-{i}.{reg_service['metadata']['name']}:{service_port}"
                    for i in range(reg["spec"]["replicas"])]
    else:
        expected = [f"{reg_service['metadata']['name']}:{reg_service['spec']['ports'][0]['port']}"]
    for prog in ("gwx-gateway", "gwx-worker"):
        f, _, _, values, _ = by_prog[prog]
        check(values["register"][0].split(",") == expected,
              f"{f}: --register {values['register']} should list every register: {expected}")

    # Gateway: LoadBalancer on the ws port, internal address from the pod IP.
    gf, gw, gc, gvalues, gsources = by_prog["gwx-gateway"]
    lb = [s for _, s in services if s["spec"].get("type") == "LoadBalancer"]
    check(len(lb) == 1 and lb[0]["spec"]["selector"].items() <=
          gw["spec"]["template"]["metadata"]["labels"].items(),
          f"{gf}: the gateways need one LoadBalancer Service")
    ws = [u for u in gvalues["listen"] if u.startswith("ws://")]
    check(ws and port_of(ws[0]) == container_port(gc, "ws"), f"{gf}: ws listener vs port")
    check(gvalues["internal"] == [f"0.0.0.0:{container_port(gc, 'internal')}"],
          f"{gf}: --internal {gvalues['internal']} should be 0.0.0.0 on the internal port")
    check(gsources["advertise"] == "env GWX_ADVERTISE" and
          gvalues["advertise"] == [f"10.1.2.3:{container_port(gc, 'internal')}"],
          f"{gf}: GWX_ADVERTISE should be the pod IP and the internal port: {gvalues['advertise']}")
    pod_ip = [e for e in gc["env"] if e.get("valueFrom", {}).get("fieldRef", {})
              .get("fieldPath") == "status.podIP"]
    check(pod_ip, f"{gf}: the pod IP should come from the downward API")

    # Grace periods: preStop + the binary's own bound + margin.
    for prog, option in (("gwx-worker", "drain-timeout-ms"), ("gwx-gateway",
                                                                "shutdown-timeout-ms")):
        f, w, c, values, _ = by_prog[prog]
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        check(prog != "gwx-worker" or pre, f"{f}: the worker needs a preStop hook")
        pause = int(pre[-1]) if pre and pre[0].endswith("sleep") else 0
        grace = w["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if option in values:
            bound = int(values[option][0]) / 1000
            check(grace >= pause + bound + 5,
                  f"{f}: terminationGracePeriodSeconds {grace} < preStop {pause} s + {option} "
                  f"{bound:g} s + 5 s")
    log(f"k8s: {len(docs)} documents; image, ports, probes, registers and grace periods agree")

    # The Prometheus scrape config keeps annotated pods and scrapes their annotated port.
    cm = next(d for _, d in docs if d["kind"] == "ConfigMap" and "prometheus.yml" in d["data"])
    prom = yaml.safe_load(cm["data"]["prometheus.yml"])
    job = prom["scrape_configs"][0]
    check(job["kubernetes_sd_configs"][0]["role"] == "pod", "prometheus: expected pod discovery")
    labels = [r.get("source_labels", []) for r in job["relabel_configs"]]
    check(["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] in labels and
          any("__meta_kubernetes_pod_annotation_prometheus_io_port" in s for s in labels),
          "prometheus: the scrape config should follow the prometheus.io annotations")


def check_prometheus_static():
    path = os.path.join(DEPLOY, "prometheus", "prometheus.yml")
    promtool = shutil.which("promtool")
    check(promtool, "promtool is missing (Debian package prometheus)")
    done = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True,
                          timeout=60)
    check(done.returncode == 0, f"promtool check config {path}:\n{done.stdout}{done.stderr}")
    doc = yaml.safe_load(read(path))
    targets = {job["job_name"]: [port_of(t) for c in job["static_configs"] for t in c["targets"]]
               for job in doc["scrape_configs"]}
    for prog in ("gwx-register", "gwx-gateway", "gwx-worker"):
        entries, _ = parse_sample(os.path.join(DEPLOY, "config", prog + ".conf"))
        ports = [port_of(v) for _, k, v, _ in entries if k == "metrics"]
        check(ports and ports[0] in targets.get(prog, []),
              f"{path}: job {prog} does not scrape the sample config's metrics port {ports}")
    log("prometheus.yml: promtool accepts it; targets are the sample configs' metrics ports")


def check_readme():
    readme = read(os.path.join(DEPLOY, "README.md"))
    for dirpath, _, files in os.walk(DEPLOY):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), DEPLOY)
            if rel in ("README.md",) or name.startswith("."):
                continue
            check(rel in readme or name in readme, f"deploy/README.md does not mention {rel}")
    log("deploy/README.md mentions every file")


def main():
    args = parse_args()
    deadline = time.monotonic() + args.timeout
    binaries = Binaries(args.bin)
    failed = []
    with tempfile.TemporaryDirectory(prefix="gwx-deploy-") as tmp:
        steps = [("sample configs", lambda: check_sample_configs(binaries)),
                 ("systemd", lambda: check_systemd(binaries, tmp)),
                 ("Dockerfile", lambda: check_dockerfile(binaries)),
                 ("compose", lambda: check_compose(binaries)),
                 ("Kubernetes", lambda: check_k8s(binaries)),
                 ("Prometheus", check_prometheus_static),
                 ("README", check_readme)]
        for name, step in steps:
            try:
                step()
            except Exception as e:  # pylint: disable=broad-except  # every step reports alone
                failed.append(name)
                print(f"FAIL {name}: {type(e).__name__ + ': ' if not isinstance(e, Failure) else ''}"
                      f"{e}", flush=True)
            if time.monotonic() > deadline:
                print("FAIL: over the deadline", flush=True)
                sys.exit(1)
    if failed:
        print(f"test_deploy: failed: {', '.join(failed)}")
        sys.exit(1)
    print("test_deploy: all checks passed")


if __name__ == "__main__":
    main()
