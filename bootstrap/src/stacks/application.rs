//! The environment's application tier: security groups, the load balancer with a blue and a
//! green target group per web service, production rules and test-traffic rules (what ECS's
//! blue/green shifts and what its gates test), the cluster, the roles, the log groups.

use serde_json::{json, Value};

use super::{att, logical, r, sub, tags, Template};
use crate::spec::{Spec, WebService};

/// The test listener's port: test traffic reaches the green revision here during a native
/// deployment, from inside the VPC only.
pub const TEST_PORT: u16 = 8080;

pub(super) fn application(t: &mut Template, spec: &Spec, outputs: &mut Vec<(String, Value)>) {
    let p = format!("{}-{}", spec.project, spec.environment);
    security_groups(t, spec, &p);
    load_balancer(t, spec, &p, outputs);
    t.add(
        "Cluster",
        "AWS::ECS::Cluster",
        json!({
            "ClusterName": spec.cluster,
            "CapacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "ClusterSettings": [{"Name": "containerInsights",
                                 "Value": if spec.container_insights { "enabled" } else { "disabled" }}],
            "Tags": tags(spec, &spec.cluster),
        }),
    );
    roles(t, spec, &p);
    // One group for the environment, a stream prefix per service (the task definitions'
    // `awslogs-stream-prefix`): one retention setting is one resource, and one query reads
    // every service's lines.
    t.add(
        "Logs",
        "AWS::Logs::LogGroup",
        json!({"LogGroupName": format!("/ecs/{p}"), "RetentionInDays": spec.log_retention_days}),
    );
    for (name, value) in [
        ("security-groups/alb", att("AlbSecurityGroup", "GroupId")),
        ("security-groups/services", att("ServicesSecurityGroup", "GroupId")),
        ("security-groups/database", att("DatabaseSecurityGroup", "GroupId")),
        ("cluster-arn", att("Cluster", "Arn")),
        ("cluster-name", r("Cluster")),
        ("roles/execution", att("ExecutionRole", "Arn")),
        ("roles/task", att("TaskRole", "Arn")),
        ("roles/ecs-infrastructure", att("EcsInfrastructureRole", "Arn")),
    ] {
        outputs.push((name.to_owned(), value));
    }
    if spec.redis {
        outputs.push(("security-groups/cache".into(), att("CacheSecurityGroup", "GroupId")));
    }
}

fn ingress(port: u16, from: Value) -> Value {
    let mut rule = json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port});
    match from {
        Value::String(cidr) => rule["CidrIp"] = json!(cidr),
        group => rule["SourceSecurityGroupId"] = group,
    }
    rule
}

fn security_groups(t: &mut Template, spec: &Spec, p: &str) {
    let mut alb = vec![ingress(80, json!("0.0.0.0/0"))];
    if spec.certificate_arn.is_some() {
        alb.push(ingress(443, json!("0.0.0.0/0")));
    }
    alb.push(ingress(TEST_PORT, json!(spec.vpc_cidr.to_string())));
    let mut ports: Vec<u16> = spec.web.iter().map(|w| w.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let from_alb = att("AlbSecurityGroup", "GroupId");
    let from_services = att("ServicesSecurityGroup", "GroupId");
    let mut groups = vec![
        (
            "AlbSecurityGroup",
            "alb",
            "load balancer: HTTP(S) from anywhere, test traffic from the VPC",
            alb,
        ),
        (
            "ServicesSecurityGroup",
            "services",
            "services: container ports from the load balancer only",
            ports.iter().map(|port| ingress(*port, from_alb.clone())).collect(),
        ),
        (
            "DatabaseSecurityGroup",
            "database",
            "database: PostgreSQL from the services only",
            vec![ingress(5432, from_services.clone())],
        ),
    ];
    if spec.redis {
        groups.push((
            "CacheSecurityGroup",
            "cache",
            "cache: Redis from the services only",
            vec![ingress(6379, from_services)],
        ));
    }
    for (id, name, what, rules) in groups {
        t.add(
            id,
            "AWS::EC2::SecurityGroup",
            json!({
                "GroupName": format!("{p}-{name}"),
                "GroupDescription": format!("{p} {what}"),
                "VpcId": r("Vpc"),
                "SecurityGroupIngress": rules,
                "Tags": tags(spec, &format!("{p}-{name}")),
            }),
        );
    }
}

fn load_balancer(t: &mut Template, spec: &Spec, p: &str, outputs: &mut Vec<(String, Value)>) {
    t.add(
        "LoadBalancer",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        json!({
            "Name": p,
            "Type": "application",
            "Scheme": "internet-facing",
            "Subnets": [r("PublicSubnetA"), r("PublicSubnetB")],
            "SecurityGroups": [att("AlbSecurityGroup", "GroupId")],
            "Tags": tags(spec, p),
        }),
    )
    .insert("DependsOn".into(), json!("GatewayAttachment"));
    outputs.push(("alb-arn".into(), r("LoadBalancer")));
    outputs.push(("alb-dns-name".into(), att("LoadBalancer", "DNSName")));
    let listeners = listeners(t, spec, outputs);
    for (i, w) in spec.web.iter().enumerate() {
        target_groups(t, spec, p, w, outputs);
        // More specific paths first: "/*" last.
        let priority = if w.path == "/*" { 1000 } else { 10 * (i as u32 + 1) };
        let svc = logical(&w.name);
        for (listener, name) in &listeners {
            let id = format!("{svc}{listener}Rule");
            t.add(
                &id,
                "AWS::ElasticLoadBalancingV2::ListenerRule",
                json!({
                    "ListenerArn": r(&format!("{listener}Listener")),
                    "Priority": priority,
                    "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": [w.path]}}],
                    // ECS moves the weights during a native deployment; CloudFormation changes
                    // a rule only when its own template properties change.
                    "Actions": [{"Type": "forward", "TargetGroupArn": r(&format!("{svc}BlueTargetGroup"))}],
                }),
            );
            let key = match *name {
                "test" => format!("test-rules/{}", w.name),
                _ => format!("production-rules/{}", w.name),
            };
            outputs.push((key, r(&id)));
        }
    }
}

/// HTTP on 80, HTTPS on 443 when there is a certificate, and the test listener; each answers
/// 404 to what no rule routes. With a certificate HTTP only redirects to HTTPS: ECS moves one
/// production rule (`productionListenerRule` is a single ARN), so there must be one to move.
/// The logical id prefixes and output names of the listeners that carry rules.
fn listeners(
    t: &mut Template,
    spec: &Spec,
    outputs: &mut Vec<(String, Value)>,
) -> Vec<(&'static str, &'static str)> {
    let not_found = json!([{"Type": "fixed-response",
        "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no route"}}]);
    let mut listeners = vec![("Http", "http", 80u16, None)];
    if let Some(cert) = &spec.certificate_arn {
        listeners.push(("Https", "https", 443, Some(cert.clone())));
    }
    listeners.push(("Test", "test", TEST_PORT, None));
    let redirect = json!([{"Type": "redirect", "RedirectConfig":
        {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]);
    let https = spec.certificate_arn.is_some();
    for (id, name, port, cert) in &listeners {
        let default = if https && *name == "http" { &redirect } else { &not_found };
        let mut props = json!({
            "LoadBalancerArn": r("LoadBalancer"),
            "Port": port,
            "Protocol": if cert.is_some() { "HTTPS" } else { "HTTP" },
            "DefaultActions": default,
        });
        if let Some(c) = cert {
            props["Certificates"] = json!([{"CertificateArn": c}]);
        }
        t.add(&format!("{id}Listener"), "AWS::ElasticLoadBalancingV2::Listener", props);
        outputs.push((format!("listeners/{name}"), r(&format!("{id}Listener"))));
    }
    (listeners.iter())
        .filter(|(_, name, _, _)| !(https && *name == "http"))
        .map(|(id, name, _, _)| (*id, *name))
        .collect()
}

/// A web service's blue and green target groups (ECS swaps them in a native deployment).
fn target_groups(
    t: &mut Template,
    spec: &Spec,
    p: &str,
    w: &WebService,
    outputs: &mut Vec<(String, Value)>,
) {
    let svc = logical(&w.name);
    for colour in ["Blue", "Green"] {
        let id = format!("{svc}{colour}TargetGroup");
        let name = format!("{p}-{}-{}", w.name, colour.to_lowercase());
        t.add(
            &id,
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            json!({
                "Name": name,
                "VpcId": r("Vpc"),
                "TargetType": "ip",
                "Protocol": "HTTP",
                "Port": w.port,
                "HealthCheckPath": spec.health_check_path,
                "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds",
                                           "Value": spec.deregistration_delay_seconds.to_string()}],
                "Tags": tags(spec, &name),
            }),
        );
        outputs.push((format!("target-groups/{}/{}", w.name, colour.to_lowercase()), r(&id)));
    }
}

fn role(service: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    ]})
}

fn roles(t: &mut Template, spec: &Spec, p: &str) {
    let env_path = format!("{}/{}", spec.project, spec.environment);
    let repos: Vec<Value> = (spec.repositories.iter())
        .map(|repo| sub(&format!("arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/{repo}")))
        .collect();
    // What the tasks' agent may do: pull, log, read this environment's secrets.
    let execution = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Registry", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "Images", "Effect": "Allow",
         "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
         "Resource": repos},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": sub(&format!("arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/ecs/{p}:*"))},
        {"Sid": "Parameters", "Effect": "Allow", "Action": "ssm:GetParameters",
         "Resource": sub(&format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{env_path}/*"))},
        {"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": sub(&format!("arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{env_path}/*"))}
    ]});
    let tasks = role("ecs-tasks.amazonaws.com");
    // What the tasks' code may do: nothing of ours, unless a service enables ECS Exec.
    fn task_role(spec: &Spec, tasks: Value) -> Value {
        let mut role = json!({"AssumeRolePolicyDocument": tasks});
        if spec.execute_command {
            // "Using Amazon ECS Exec", ECS Developer Guide: the SSM agent in the task opens
            // its channels with the task role; the actions take no resource type (`*`).
            role["Policies"] = json!([{"PolicyName": "exec", "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Sid": "Exec", "Effect": "Allow", "Action": [
                    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"
                ], "Resource": "*"}]
            }}]);
        }
        role
    }
    let execution = json!({"AssumeRolePolicyDocument": tasks,
        "Policies": [{"PolicyName": "execution", "PolicyDocument": execution}]});
    // The role ECS shifts traffic with for blue/green, canary and linear.
    let infrastructure = json!({"AssumeRolePolicyDocument": role("ecs.amazonaws.com"),
        "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForLoadBalancers")]});
    for (id, name, mut properties) in [
        ("ExecutionRole", "execution", execution),
        ("TaskRole", "task", task_role(spec, tasks.clone())),
        ("EcsInfrastructureRole", "ecs-infrastructure", infrastructure),
    ] {
        properties["RoleName"] = json!(format!("{p}-{name}"));
        properties["Tags"] = tags(spec, &format!("{p}-{name}"));
        t.add(id, "AWS::IAM::Role", properties);
    }
}
