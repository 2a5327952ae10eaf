#!/usr/bin/env python3
"""Consistency checks between infra/ and the code, run by .ci/run.

Terraform cannot init here (no provider downloads), so `validate` and
`plan` are out of reach; these checks catch the drift they would not
anyway: a function without a Lambda, a setting the code never reads, a
tfvars key that is not a variable, a route the handler does not serve.
"""
import glob
import json
import os
import re
import subprocess
import sys

import hcl2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFRA = os.path.join(ROOT, "infra")
errors = []


def unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def load(path):
    with open(path) as f:
        return hcl2.load(f)


tf = {os.path.basename(p): load(p) for p in sorted(glob.glob(os.path.join(INFRA, "*.tf")))}
blocks = lambda kind: [b for d in tf.values() for b in d.get(kind, [])]

# 1. One Lambda per function crate, and no Lambda without a crate.
crates = {}
for cargo in glob.glob(os.path.join(ROOT, "functions", "*", "Cargo.toml")):
    text = open(cargo).read()
    bins = re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', text)
    if len(bins) != 1:
        errors.append(f"{cargo}: expected exactly one [[bin]] (cargo lambda packages one bootstrap per function)")
    crates.update({b: cargo for b in bins})
local_blocks = blocks("locals")
functions = {}
for l in local_blocks:
    functions.update(l.get("functions", {}))
if set(functions) != set(crates):
    errors.append(f"Lambda functions {sorted(functions)} differ from function crates {sorted(crates)}")

# 2. Every setting Terraform passes is read by the settings module.
code = ""
for p in glob.glob(os.path.join(ROOT, "shared", "**", "*.rs"), recursive=True):
    code += open(p).read()
SETTINGS = os.path.join(ROOT, "shared", "app", "src", "settings.rs")
settings_code = open(SETTINGS).read()
env = {}
for l in local_blocks:
    env.update(l.get("common_env", {}))
for f in functions.values():
    env.update(f.get("env", {}))
for name in env:
    if name != "RUST_LOG" and f'"{name}"' not in settings_code:
        errors.append(f"Terraform sets {name}, which shared/app/src/settings.rs never reads")

# 3. Every ATLAS_* setting the code reads is documented in the README.
readme = open(os.path.join(ROOT, "README.md")).read()
for name in sorted(set(re.findall(r'"(ATLAS_[A-Z0-9_]+)"', code))):
    if name not in readme:
        errors.append(f"{name} is read by the code but not documented in README.md")

# 4. tfvars only set declared variables and set every required one.
declared = {}
for v in blocks("variable"):
    for k, body in v.items():
        declared[unquote(k)] = "default" in body
for path in sorted(glob.glob(os.path.join(INFRA, "environments", "*.tfvars"))):
    values = load(path)
    for k in values:
        if k not in declared:
            errors.append(f"{path}: {k} is not a declared variable")
    for k, has_default in declared.items():
        if not has_default and k not in values and k != "database_url":
            errors.append(f"{path}: required variable {k} is not set")

# 5. API routes exist for every documented operation, with its scope.
routes = []
scopes = {}
for r in blocks("resource"):
    for kind, named in r.items():
        if unquote(kind) == "aws_apigatewayv2_route":
            for body in named.values():
                key = unquote(body["route_key"])
                if key == "${each.key}" and isinstance(body["for_each"], dict):
                    for k, v in body["for_each"].items():
                        routes.append(unquote(k))
                        scopes[unquote(k)] = [unquote(x) for x in (v if isinstance(v, list) else [v])]
                else:
                    routes.append(key)
                    scopes[key] = [unquote(x) for x in body.get("authorization_scopes", [])]
# Every operation of the API document (shared/query/openapi.json, which
# tests/openapi.rs holds the handlers to) reaches a function.
def routed(method, path):
    if f"{method} {path}" in routes or f"ANY {path}" in routes:
        return True
    return any(r.startswith("ANY ") and r.endswith("/{proxy+}") and path.startswith(r[4:-len("{proxy+}")])
               for r in routes)


api = json.load(open(os.path.join(ROOT, "shared", "query", "openapi.json")))
for path, item in api["paths"].items():
    for method, op in item.items():
        if not routed(method.upper(), path):
            errors.append(f"no API Gateway route for {method.upper()} {path}; routes: {routes}")
        documented = [s for req in op.get("security", []) for s in req.get("bearer", [])]
        declared = scopes.get(f"{method.upper()} {path}")
        if declared != documented:
            errors.append(f"{method.upper()} {path}: the document's scopes {documented} differ from "
                          f"the route's authorization_scopes {declared}")

# 6. Sample events are valid JSON.
for p in glob.glob(os.path.join(ROOT, "events", "*.json")):
    try:
        json.load(open(p))
    except ValueError as e:
        errors.append(f"{p}: {e}")

# 7. Settings have one home: no code a Lambda links reads the environment
# outside shared/app/src/settings.rs, except to ask whether it runs in
# Lambda and to follow the AWS SDK's own endpoint override. The client
# library is the API's callers', never a Lambda's, and reads its own two
# variables (ATLAS_API_URL, ATLAS_TOKEN) as its documentation says.
DEV_ONLY = {"devstack", "cli", "bench", "gateway", "client"}
ALLOWED_READS = {"AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL_S3"}
for p in glob.glob(os.path.join(ROOT, "shared", "*", "src", "**", "*.rs"), recursive=True) + glob.glob(
    os.path.join(ROOT, "functions", "*", "src", "**", "*.rs"), recursive=True
):
    crate = os.path.relpath(p, ROOT).split(os.sep)[1]
    if p == SETTINGS or crate in DEV_ONLY:
        continue
    for name in re.findall(r'env::var(?:_os)?\(\s*"([A-Z0-9_]+)"', open(p).read()):
        if name not in ALLOWED_READS:
            errors.append(f"{os.path.relpath(p, ROOT)} reads {name}; settings are read in shared/app/src/settings.rs")

# 8. No Lambda links the development-only crates.
for fn, cargo in sorted(crates.items()):
    package = re.search(r'\[package\]\s*name\s*=\s*"([^"]+)"', open(cargo).read()).group(1)
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "-p", package],
        cwd=ROOT, capture_output=True, text=True,
    )
    if tree.returncode != 0:
        errors.append(f"cargo tree -p {package} failed: {tree.stderr.strip()[:300]}")
        continue
    linked = {line.split()[0] for line in tree.stdout.splitlines() if line.strip()}
    for dev_only in sorted(linked & {f"atlas-{c}" for c in DEV_ONLY} | linked & {"jsonwebtoken"}):
        errors.append(f"the {fn} Lambda links {dev_only}, which is for local use only")

# 9. Every Atlas metric an alarm or the dashboard names is one the code
# emits: a metric's name is the string literal just before its Unit.
emitted = set()
for p in glob.glob(os.path.join(ROOT, "shared", "**", "*.rs"), recursive=True):
    if p.endswith(os.path.join("cloud", "src", "metrics.rs")):
        continue
    text = open(p).read()
    for m in re.finditer(r"Unit::[A-Z]", text):
        names = re.findall(r'"([A-Z][A-Za-z0-9]+)"\s*,', text[max(0, m.start() - 200):m.start()])
        if names:
            emitted.add(names[-1])
alarmed = set()
for path in glob.glob(os.path.join(INFRA, "*.tf")):
    text = open(path).read()
    alarmed |= set(re.findall(r'\bmetric\s*=\s*"(\w+)"', text))
    alarmed |= set(re.findall(r'\[\s*"Atlas"\s*,\s*"(\w+)"', text))
if not alarmed:
    errors.append("no alarm or dashboard names an Atlas metric")
for name in sorted(alarmed - emitted):
    errors.append(f"infra names the Atlas metric {name}, which no code emits (emitted: {sorted(emitted)})")

if errors:
    print("infra check failed:")
    for e in errors:
        print(f"  - {e}")
    sys.exit(1)
print(f"infra check: {len(functions)} functions, {len(env)} settings, {len(routes)} routes, "
      f"{len(alarmed)} alarmed metrics, "
      f"{len(glob.glob(os.path.join(INFRA, 'environments', '*.tfvars')))} environments consistent")
