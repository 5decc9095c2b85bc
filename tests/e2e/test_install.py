#!/usr/bin/python3
"""The installed gwx, used the way another project would use it.

`cmake --install BUILD --prefix TMP` puts the binaries, the public headers, the libraries, the
CMake package and the pkg-config files under TMP. Then, with nothing but that prefix:

- every installed header compiles on its own and pulls in no third-party header (the public API
  needs none: no asio, gRPC, protobuf, spdlog, Boost or OpenSSL, no generated code), and no
  installed header, package file or pkg-config file names the source or build tree;
- the example app (worker/examples/greeter_app.cpp), copied to a directory of its own with
  tests/e2e/install/app/CMakeLists.txt, builds with find_package(gwx) and gwx::sdk, and into a
  program of its own (own_worker.cpp) with gwx::sdk_static; the same source builds with
  `pkg-config --cflags gwx-sdk`;
- a push program (tests/e2e/install/pusher/) builds with find_package(gwx) and gwx::client, and
  again with `pkg-config --cflags --libs gwx-client`;
- a register, a gateway and a worker, all from TMP/bin, the worker running the out-of-tree app:
  a WebSocket client gets the app's greeting and its reply to `name ...`, then each of the two
  pushers pushes a message to that client, which receives both; a second client gets neither.
  Then the pkg-config-built app, and then own_worker, take over (the previous worker drained)
  and each greets and answers a new client.
"""

import glob
import os
import re
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, connect, log, run_test  # noqa: E402

# Headers a public header must never pull in (the package does not promise them to users).
THIRD_PARTY_RX = re.compile(
    r"/(asio|grpc|grpcpp|google|spdlog|fmt|boost|openssl|absl|prometheus)(/|\.h)")
# Internals that must not be installed.
INTERNAL_HEADERS = ("worker/sdk/handler_pool.hpp", "worker/sdk/event_runner.hpp",
                    "common/cluster/cluster_core.hpp", "common/cluster/gateway_link.hpp",
                    "common/net/link_stream.hpp")
BUILD_TIMEOUT = 240


async def main(h):
    a = h.args
    c = h.cluster
    work = os.path.join(h.tmp, "work")
    prefix = os.path.join(h.tmp, "prefix")
    os.makedirs(work)
    here = os.path.dirname(os.path.abspath(__file__))

    async def run_ok(name, argv, timeout=BUILD_TIMEOUT):
        status, out, err = await c.run(name, argv, timeout=timeout)
        check(status == 0, f"{name}: {' '.join(argv)} exited {status}\nstdout:\n{out}\n"
                           f"stderr:\n{err}")
        return out

    # ---- install ----
    await run_ok("install", ["cmake", "--install", a.build_dir, "--prefix", prefix])
    bindir = os.path.join(prefix, "bin")
    for b in ("gwx-register", "gwx-gateway", "gwx-worker", "gwxctl"):
        check(os.access(os.path.join(bindir, b), os.X_OK), f"{b} not installed in {bindir}")
    if os.path.exists(os.path.join(h.bin_dir, "gwx-bench")):
        check(os.access(os.path.join(bindir, "gwx-bench"), os.X_OK), "gwx-bench not installed")
    incdir = os.path.join(prefix, "include", "gwx")
    headers = sorted(os.path.relpath(p, incdir)
                     for p in glob.glob(os.path.join(incdir, "**", "*.h*"), recursive=True))
    for needed in ("worker/sdk/app.hpp", "worker/sdk/worker.hpp", "common/cluster/client.hpp"):
        check(needed in headers, f"{needed} not installed under {incdir}: {headers}")
    for internal in INTERNAL_HEADERS:
        check(internal not in headers, f"internal header {internal} installed")
    check(not [x for x in headers if x.endswith(".pb.h")], f"generated headers installed: {headers}")
    pcdir = glob.glob(os.path.join(prefix, "lib*", "**", "pkgconfig"), recursive=True)
    check(len(pcdir) == 1, f"expected one pkgconfig directory under {prefix}, got {pcdir}")
    pcdir = pcdir[0]
    for pc in ("gwx-sdk.pc", "gwx-client.pc"):
        check(os.path.isfile(os.path.join(pcdir, pc)), f"{pc} not installed in {pcdir}")
    log(f"install: binaries, {len(headers)} public headers, CMake package and pkg-config files "
        f"under {prefix}")

    # Nothing installed names the trees it came from.
    trees = {os.path.realpath(a.source_dir), os.path.realpath(a.build_dir),
             os.path.abspath(a.source_dir), os.path.abspath(a.build_dir)}
    texts = [p for p in glob.glob(os.path.join(prefix, "**", "*"), recursive=True)
             if os.path.isfile(p) and re.search(r"\.(cmake|pc|h|hpp)$", p)]
    for path in texts:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for tree in trees:
            check(tree not in text, f"{path} names the tree {tree}")
    log(f"install: none of {len(texts)} installed headers and package files names the "
        f"source or build tree")

    # ---- each public header on its own, against the prefix only ----
    cxx = a.cxx
    for i, hdr in enumerate(headers):
        tu = os.path.join(work, f"header_{i}.cpp")
        with open(tu, "w", encoding="utf-8") as f:
            f.write(f'#include "{hdr}"\n')
        status, _, err = await c.run(f"header-{i}", [cxx, "-std=c++20", "-fsyntax-only", "-H",
                                                     "-I", incdir, tu], timeout=60)
        check(status == 0, f"{hdr} does not compile on its own against {incdir}:\n{err}")
        included = [ln.lstrip(". ") for ln in err.splitlines() if re.match(r"^\.+ ", ln)]
        leaked = [p for p in included if THIRD_PARTY_RX.search(p)]
        check(not leaked, f"public header {hdr} pulls in third-party headers: {leaked[:3]}"
                          f"{' …' if len(leaked) > 3 else ''}")
    log(f"headers: each of the {len(headers)} installed headers compiles alone with "
        f"-I{incdir} and pulls in no third-party header")

    # ---- out-of-tree builds with find_package(gwx) ----
    def configure_argv(src, build):
        argv = ["cmake", "-S", src, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}",
                f"-DCMAKE_CXX_COMPILER={cxx}", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"]
        if shutil.which("ninja"):
            argv += ["-G", "Ninja"]
        if a.launcher:
            argv.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={a.launcher}")
        return argv

    async def build_outside(name, files):
        src = os.path.join(work, f"{name}-src")
        build = os.path.join(work, f"{name}-build")
        os.makedirs(src)
        for f in files:
            shutil.copy(f, src)
        await run_ok(f"{name}-configure", configure_argv(src, build))
        with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
            m = re.search(r"^gwx_DIR:\w+=(.*)$", f.read(), re.M)
        check(m and os.path.realpath(m.group(1)).startswith(os.path.realpath(prefix)),
              f"{name}: find_package(gwx) found {m.group(1) if m else None}, not the one in "
              f"{prefix}")
        await run_ok(f"{name}-build", ["cmake", "--build", build])
        return src, build

    example = os.path.join(a.source_dir, "worker", "examples", "greeter_app.cpp")
    app_src, app_build = await build_outside(
        "app", [example] + [os.path.join(here, "install", "app", f)
                            for f in ("CMakeLists.txt", "own_worker.cpp")])
    app_lib = os.path.join(app_build, "libgreeter.so")
    check(os.path.isfile(app_lib), f"{app_lib} not built")
    own_worker = os.path.join(app_build, "own_worker")
    check(os.access(own_worker, os.X_OK), f"{own_worker} not built")
    pusher_src, pusher_build = await build_outside(
        "pusher", [os.path.join(here, "install", "pusher", f)
                   for f in ("pusher.cpp", "CMakeLists.txt")])
    pusher = os.path.join(pusher_build, "pusher")
    check(os.access(pusher, os.X_OK), f"{pusher} not built")
    log("find_package(gwx): the example app (gwx::sdk), the same app in a program of its own "
        "(gwx::sdk_static) and the pusher (gwx::client) built out of tree")

    # ---- the same sources with pkg-config ----
    env = ["env", f"PKG_CONFIG_PATH={pcdir}"]
    pc_client = await run_ok("pkg-config-client",
                             env + ["pkg-config", "--cflags", "--libs", "gwx-client"], timeout=30)
    pusher_pc = os.path.join(work, "pusher-pc")
    await run_ok("pusher-pc-build", [cxx, "-O1", os.path.join(pusher_src, "pusher.cpp"),
                                     "-o", pusher_pc] + shlex.split(pc_client))
    pc_sdk = await run_ok("pkg-config-sdk", env + ["pkg-config", "--cflags", "--libs", "gwx-sdk"],
                          timeout=30)
    app_pc = os.path.join(work, "libgreeter-pc.so")
    await run_ok("app-pc-build", [cxx, "-O1", "-shared", "-fPIC", "-fvisibility=hidden",
                                  os.path.join(app_src, "greeter_app.cpp"), "-o", app_pc]
                 + shlex.split(pc_sdk))
    log(f"pkg-config: the pusher built with `{pc_client.strip()[:60]}…`, the app with "
        f"`{pc_sdk.strip()}`")

    # ---- run it all from the prefix ----
    h.bin_dir = bindir
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], name="gw")
    w = await c.start_worker([reg.addr], app_lib, name="outside-app")
    await c.wait_linked([w], [gw])
    check(c.binary("gwx-worker").startswith(prefix), "the worker runs from the prefix")

    async def join(name):
        x = await connect(gw, "ws", name)
        greeting = await x.recv()
        m = re.match(r"^hello ([0-9a-f]+)$", greeting)
        check(m, f"{name}: expected the app's 'hello <client_id>' on connect, got {greeting!r}")
        x.id = m.group(1)
        return x

    ann = await join("ann")
    bob = await join("bob")
    check_eq(await ann.cmd("name Ann"), "you are Ann", "ann: the app's reply to 'name Ann'")
    log("app: the out-of-tree greeter greeted both clients and answered 'name Ann'")

    for name, exe in (("pusher-cmake", pusher), ("pusher-pkgconfig", pusher_pc)):
        text = f"pushed by {name}"
        out = await run_ok(name, [exe, reg.addr, c.secret, ann.id, text], timeout=60)
        # (gwx::Client's own log lines go to stdout too, through spdlog's default logger)
        check_eq(out.strip().splitlines()[-1:], [f"pushed to {ann.id}"], f"{name}: its last line")
        check_eq(await ann.recv(), text, f"ann: the message of {name}")
    # bob is in the lobby too: the next lobby message is the first thing he gets.
    await bob.send("still here")
    check_eq(await bob.recv(), "someone says still here", "bob: got no push, then the lobby relay")
    check_eq(await ann.recv(), "someone says still here", "ann: the lobby relay")
    log("push: both pushers reached ann, bob got neither; the lobby relay still works")

    # The app built with pkg-config runs in the installed gwx-worker too: once the first worker
    # is gone, a new client is greeted by it.
    w2 = await c.start_worker([reg.addr], app_pc, name="outside-app-pc")
    await c.wait_linked([w2], [gw])
    check_eq(await w.stop(), 0, "the first worker's exit status after SIGTERM")
    cid = await join("cid")
    check_eq(await cid.cmd("name Cid"), "you are Cid", "cid: the pkg-config app's reply")
    log("pkg-config app: the installed gwx-worker runs it; it greeted and answered a new client")

    # The program of its own (gwx::sdk_static) takes over the same way.
    own = await c.spawn("own-worker", [own_worker, reg.addr, c.secret, "own-worker"])
    await own.wait_line(rf"^linked {re.escape(gw.internal)}$")
    check_eq(await w2.stop(), 0, "the pkg-config app's worker exit status after SIGTERM")
    dee = await join("dee")
    check_eq(await dee.cmd("name Dee"), "you are Dee", "dee: the own worker's reply")
    check_eq(await own.stop(), 0, "own_worker's exit status after SIGTERM (a complete drain)")
    log("own main: a gwx::worker linked with gwx::sdk_static greeted and answered a new client, "
        "then drained and exited 0")


if __name__ == "__main__":
    run_test(main, extra_args=[
        (("--build-dir",), {"required": True, "help": "the gwx build tree to install"}),
        (("--source-dir",), {"required": True, "help": "the gwx source tree (example app)"}),
        (("--cxx",), {"default": "c++", "help": "C++ compiler for the outside builds"}),
        (("--launcher",), {"default": "", "help": "compiler launcher (ccache) for them"}),
    ])
