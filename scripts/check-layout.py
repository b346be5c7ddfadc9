#!/usr/bin/env python3
"""The layout by party, checked (docs/architecture.md "Layout").

Reads the modules and their declared dependencies from LAYOUT (written by CMake from every
src/**/CMakeLists.txt custos_module call) and refuses, naming the file or module and the rule:

  1. a source file under src/ in no declared module;
  2. an #include "x/y.h" of a module that is not the file's own nor among its declared
     dependencies (transitively; test files may also use their TEST_DEPS and tests/testing);
  3. a declared dependency the design forbids (FORBIDDEN below), however indirect: the trusted
     core reaching net, store, kms or the host; protocol code reaching net or a party; client
     code reaching server code; a party reaching another party's code.

Usage: check-layout.py --src SRC --layout LAYOUT [--self-test]
--self-test also shows, on copies, that a forbidden include and a forbidden declaration fail.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile

# (module prefix, forbidden prefixes, why). A prefix "x/" matches every module under x/.
FORBIDDEN = [
    ("appliance/enclave", ["net", "appliance/store", "appliance/kms", "appliance/host", "keeper/", "client/", "cli"],
     "the trusted core links no network, store, KMS front end or host code"),
    ("protocol/", ["net", "appliance/", "keeper/", "client/", "cli"],
     "protocol code is pure: no network and no party's code"),
    ("common", ["crypto", "net", "protocol/", "appliance/", "keeper/", "client/", "cli"],
     "common code depends on nothing of custos"),
    ("crypto", ["net", "protocol/", "appliance/", "keeper/", "client/", "cli"],
     "crypto depends only on common"),
    ("net", ["protocol/", "appliance/", "keeper/", "client/", "cli"],
     "net is transport only"),
    ("appliance/", ["keeper/", "client/", "cli"],
     "the appliance links no keeper or client code"),
    ("keeper/", ["appliance/", "client/", "cli"],
     "a keeper links no appliance or client code"),
    ("keeper/api", ["keeper/daemon"],
     "the keeper wire protocol and client are linked apart from the daemon"),
    ("client/", ["appliance/", "keeper/daemon", "cli"],
     "client code links no server code"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def matches(module, prefix):
    return module.startswith(prefix) if prefix.endswith("/") else module == prefix


def read_layout(path):
    deps, test_deps = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            parts += [""] * (3 - len(parts))
            deps[parts[0]] = parts[1].split()
            test_deps[parts[0]] = parts[2].split()
    return deps, test_deps


def closure(start, deps):
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(deps.get(m, []))
    return seen


def module_of(rel, modules):
    best = None
    for m in modules:
        if rel.startswith(m + "/") and (best is None or len(m) > len(best)):
            best = m
    return best


def check(src, layout):
    deps, test_deps = read_layout(layout)
    modules = sorted(deps)
    errors = []
    for m in modules:
        for d in deps[m] + test_deps[m]:
            if d not in deps:
                errors.append(f"module {m}: declared dependency {d} is not a module")
    # 3. forbidden edges in the declared (library) graph, with the path that reaches them.
    for m in modules:
        reach = closure(deps[m], deps)
        for prefix, forbidden, why in FORBIDDEN:
            if not matches(m, prefix):
                continue
            for bad in sorted(reach):
                if any(matches(bad, f) for f in forbidden):
                    errors.append(f"module {m} depends on {bad}: forbidden ({why}); "
                                  f"see src/{m}/CMakeLists.txt")
    # 1 and 2: every file in a module; every include within the module's reach.
    for dirpath, _, files in os.walk(src):
        for fn in sorted(files):
            if not fn.endswith((".cc", ".h")):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, src)
            m = module_of(rel, modules)
            if m is None:
                errors.append(f"src/{rel}: in no module (add a CMakeLists.txt with custos_module)")
                continue
            is_test = fn.endswith("_test.cc") or fn.endswith("_testing.h")
            allowed = closure([m] + deps[m] + (test_deps[m] if is_test else []), deps)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for inc in INCLUDE.findall(text):
                if inc.startswith("tests/"):
                    if not is_test:
                        errors.append(f"src/{rel}: includes {inc}: test support in production code")
                    continue
                target = module_of(inc, modules)
                if target is None:
                    if os.path.exists(os.path.join(src, inc)):
                        errors.append(f"src/{rel}: includes {inc}, which is in no module")
                    continue  # a third-party header (nlohmann/json.hpp, gtest/gtest.h, ...)
                if target not in allowed:
                    why = [w for p, fs, w in FORBIDDEN if matches(m, p) and any(matches(target, x) for x in fs)]
                    extra = f"; and the design forbids it ({why[0]})" if why else \
                        f"; declare it in src/{m}/CMakeLists.txt if the design allows it"
                    errors.append(f"src/{rel}: includes {inc}, but module {m} does not depend on {target}{extra}")
    return errors


def self_test(src, layout):
    """Shows that the check fails on a forbidden include and on a forbidden declaration."""
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "src")
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns("testdata"))
        lay = os.path.join(tmp, "layout.txt")
        shutil.copy(layout, lay)
        core = os.path.join(copy, "appliance/enclave/core.cc")
        with open(core, "a", encoding="utf-8") as f:
            f.write('\n#include "net/http_client.h"\n')
        errors = check(copy, lay)
        want = "src/appliance/enclave/core.cc: includes net/http_client.h, but module appliance/enclave does not depend on net; and the design forbids it"
        hit = [e for e in errors if e.startswith(want)]
        print(f"self-test: the trusted core including net/http_client.h -> {len(errors)} error(s)")
        for e in errors:
            print("  " + e)
        ok &= bool(hit)
        # The same edge declared in CMake (as if someone added `net` to the enclave's DEPS).
        with open(lay, encoding="utf-8") as f:
            lines = f.read().splitlines()
        with open(lay, "w", encoding="utf-8") as f:
            for line in lines:
                if line.startswith("appliance/enclave\t"):
                    parts = line.split("\t")
                    parts[1] += " net"
                    line = "\t".join(parts)
                if line.startswith("protocol/sigma\t"):
                    parts = line.split("\t")
                    parts[1] += " keeper/api"
                    line = "\t".join(parts)
                f.write(line + "\n")
        errors = check(copy, lay)
        print(f"self-test: net declared for appliance/enclave, keeper/api for protocol/sigma -> {len(errors)} error(s)")
        for e in errors:
            print("  " + e)
        ok &= any(e.startswith("module appliance/enclave depends on net: forbidden") for e in errors)
        ok &= any(e.startswith("module protocol/sigma depends on keeper/api: forbidden") for e in errors)
        # Indirectly too: the trusted core links protocol/sigma, which now reaches keeper/api.
        ok &= any(e.startswith("module appliance/enclave depends on keeper/api: forbidden") for e in errors)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--layout", required=True)
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    errors = check(a.src, a.layout)
    for e in errors:
        print("layout: " + e, file=sys.stderr)
    if errors:
        print(f"layout: {len(errors)} violation(s) of the layout by party (docs/architecture.md)", file=sys.stderr)
        return 1
    deps, _ = read_layout(a.layout)
    print(f"layout: {len(deps)} modules, every include within its declared dependencies, no forbidden edge")
    if a.self_test:
        if not self_test(a.src, a.layout):
            print("layout: SELF-TEST FAILED: a forbidden edge was not refused", file=sys.stderr)
            return 1
        print("layout: self-test: forbidden edges refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
