"""Every JSON-protocol request the end-to-end tests sent through the strict proxy, checked against
AWS's own service models as botocore ships them: required members, enums, string and list
lengths, patterns, numeric ranges, and members the model does not have. The emulator takes
requests AWS refuses; this finds them by the member's path.

    validate_requests.py LOG_DIR     exit 1 naming operation and member for each problem
    validate_requests.py --self-test the check must catch a request made wrong each way
"""

import json
import re
import sys
from pathlib import Path

from botocore.loaders import Loader

# The credential scope's service name → botocore's model name, where they differ.
MODEL = {"logs": "logs", "ecs": "ecs", "ecr": "ecr", "ssm": "ssm", "sqs": "sqs",
         "application-autoscaling": "application-autoscaling", "events": "events"}

_loader = Loader()
_models = {}


def model(service):
    if service not in _models:
        try:
            _models[service] = _loader.load_service_model(MODEL.get(service, service), "service-2")
        except Exception:
            _models[service] = None
    return _models[service]


def check(m, shape_name, value, path, out):
    shape = m["shapes"][shape_name]
    kind = shape["type"]
    if shape.get("document"):
        # A free-form JSON document (hookDetails): any value.
        return
    if kind == "structure":
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object")
            return
        members = shape.get("members", {})
        for req in shape.get("required", []):
            if req not in value:
                out.append(f"{path}.{req}: required")
        for k, v in value.items():
            if k not in members:
                out.append(f"{path}.{k}: not a member of {shape_name}")
                continue
            check(m, members[k]["shape"], v, f"{path}.{k}", out)
    elif kind == "list":
        if not isinstance(value, list):
            out.append(f"{path}: expected a list")
            return
        bounds(shape, len(value), path, "items", out)
        for i, v in enumerate(value):
            check(m, shape["member"]["shape"], v, f"{path}[{i}]", out)
    elif kind == "map":
        if not isinstance(value, dict):
            out.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            check(m, shape["value"]["shape"], v, f"{path}.{k}", out)
    elif kind == "string":
        if not isinstance(value, str):
            out.append(f"{path}: expected a string")
            return
        if "enum" in shape and value not in shape["enum"]:
            out.append(f"{path}: `{value[:40]}` is not one of {shape['enum'][:8]}")
        bounds(shape, len(value), path, "characters", out)
        pattern = shape.get("pattern")
        if pattern:
            try:
                if not re.fullmatch(pattern, value, re.DOTALL):
                    out.append(f"{path}: does not match {pattern[:60]}")
            except re.error:
                pass
    elif kind in ("integer", "long", "double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out.append(f"{path}: expected a number")
            return
        bounds(shape, value, path, "", out)
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean")


def bounds(shape, n, path, unit, out):
    lo, hi = shape.get("min"), shape.get("max")
    if lo is not None and n < lo:
        out.append(f"{path}: {n} {unit} is under the minimum {lo}".replace("  ", " "))
    if hi is not None and n > hi:
        out.append(f"{path}: {n} {unit} is over the maximum {hi}".replace("  ", " "))


def problems_of(operation, request):
    service, _, op = operation.partition(":")
    m = model(service)
    if m is None or op not in m["operations"]:
        return []
    shape = m["operations"][op].get("input", {}).get("shape")
    if not shape:
        return []
    out = []
    check(m, shape, request, operation, out)
    return out


def self_test():
    cases = [
        ({"cluster": "c"}, "ecs:UpdateService.service: required"),
        ({"cluster": "c", "service": "s", "propagateTags": "SOMETIMES"}, "is not one of"),
        ({"cluster": "c", "service": "s", "desiredCount": "3"}, "expected a number"),
        ({"cluster": "c", "service": "s", "colour": "blue"}, "not a member of"),
    ]
    ok = True
    for request, expected in cases:
        found = problems_of("ecs:UpdateService", request)
        if not any(expected in p for p in found):
            print(f"self-test: `{expected}` not caught in {request}: {found}")
            ok = False
    good = problems_of("ecs:UpdateService", {"cluster": "c", "service": "s", "desiredCount": 3})
    if good:
        print(f"self-test: a good request was refused: {good}")
        ok = False
    print("self-test: every mutation caught" if ok else "self-test: FAILED")
    return ok


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    seen, found = 0, {}
    for path in sorted(Path(sys.argv[1]).glob("requests-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            seen += 1
            for p in problems_of(entry["operation"], entry["request"]):
                found[p] = found.get(p, 0) + 1
    for p, n in sorted(found.items()):
        print(f"{p} ({n}×)")
    print(f"validate_requests: {seen} requests checked against botocore's models, {len(found)} problems")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
