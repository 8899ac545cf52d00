//! The environment's data tier: PostgreSQL on RDS (a final snapshot when deleted or replaced)
//! and, when asked, Redis on ElastiCache with TLS.
//!
//! The database password never appears in the template: it is an SSM SecureString written
//! before the stack (`/<project>/<env>/database/password`) and referenced with
//! `{{resolve:ssm-secure:…}}`, which CloudFormation resolves when it calls RDS and shows as the
//! reference, never the value, in templates, change sets and events (CloudFormation User
//! Guide, "Get a secure string value from Systems Manager Parameter Store"). The agent's
//! task definitions reference the same parameter by ARN.

use serde_json::{json, Value};

use super::{att, parameter, r, tags, Template};
use crate::spec::{Database, Spec};

pub(super) fn data(t: &mut Template, spec: &Spec, outputs: &mut Vec<(String, Value)>) {
    if let Some(db) = &spec.database {
        database(t, spec, db, outputs);
    }
    if spec.redis {
        cache(t, spec, outputs);
    }
}

fn private_subnets() -> Value {
    json!([r("PrivateSubnetA"), r("PrivateSubnetB")])
}

/// PostgreSQL: its subnet and parameter groups, the instance, and where the services read it.
fn database(t: &mut Template, spec: &Spec, db: &Database, outputs: &mut Vec<(String, Value)>) {
    let p = spec.prefix();
    t.add(
        "DatabaseSubnets",
        "AWS::RDS::DBSubnetGroup",
        json!({
            "DBSubnetGroupName": p,
            "DBSubnetGroupDescription": format!("{p} database: the private subnets"),
            "SubnetIds": private_subnets(),
            "Tags": tags(spec, &p),
        }),
    );
    let family = format!("postgres{}", db.major);
    t.add(
        "DatabaseParameters",
        "AWS::RDS::DBParameterGroup",
        json!({
            "DBParameterGroupName": format!("{p}-{family}"),
            "Description": format!("{p} PostgreSQL {}", db.major),
            "Family": family,
            "Tags": tags(spec, &format!("{p}-{family}")),
        }),
    );
    let database = t.add(
        "Database",
        "AWS::RDS::DBInstance",
        json!({
            "DBInstanceIdentifier": p,
            "Engine": "postgres",
            "EngineVersion": db.engine_version,
            "DBInstanceClass": db.instance_class,
            "AllocatedStorage": db.allocated_storage_gb.to_string(),
            "DBName": db.name,
            "MasterUsername": db.username,
            "MasterUserPassword": format!("{{{{resolve:ssm-secure:{}}}}}", spec.password_parameter()),
            "DBSubnetGroupName": r("DatabaseSubnets"),
            "DBParameterGroupName": r("DatabaseParameters"),
            "VPCSecurityGroups": [att("DatabaseSecurityGroup", "GroupId")],
            "StorageEncrypted": true,
            "DeletionProtection": db.deletion_protection,
            "BackupRetentionPeriod": db.backup_retention_days,
            "PubliclyAccessible": false,
            "Tags": tags(spec, &p),
        }),
    );
    // A delete, or a change that replaces the instance, takes a final snapshot first.
    database.insert("DeletionPolicy".into(), json!("Snapshot"));
    database.insert("UpdateReplacePolicy".into(), json!("Snapshot"));
    // What the services read, at the convention's paths (`secrets = { X = "database/host" }`).
    for (path, value) in [
        ("database/host", att("Database", "Endpoint.Address")),
        ("database/port", att("Database", "Endpoint.Port")),
        ("database/name", json!(db.name)),
        ("database/user", json!(db.username)),
    ] {
        parameter(t, spec, path, value);
    }
    outputs.push((
        "database-endpoint".into(),
        json!({"Fn::Join": [":", [att("Database", "Endpoint.Address"), att("Database", "Endpoint.Port")]]}),
    ));
}

/// Redis with TLS, reachable from the services' security group only.
fn cache(t: &mut Template, spec: &Spec, outputs: &mut Vec<(String, Value)>) {
    let p = spec.prefix();
    t.add(
        "CacheSubnets",
        "AWS::ElastiCache::SubnetGroup",
        json!({
            "CacheSubnetGroupName": p,
            "Description": format!("{p} cache: the private subnets"),
            "SubnetIds": private_subnets(),
        }),
    );
    let cache = t.add(
        "Cache",
        "AWS::ElastiCache::ReplicationGroup",
        json!({
            "ReplicationGroupId": p,
            "ReplicationGroupDescription": format!("{p} Redis"),
            "Engine": "redis",
            "CacheNodeType": spec.redis_node_type,
            "NumCacheClusters": 1,
            "CacheSubnetGroupName": r("CacheSubnets"),
            "SecurityGroupIds": [att("CacheSecurityGroup", "GroupId")],
            "AtRestEncryptionEnabled": true,
            "TransitEncryptionEnabled": true,
            "Tags": tags(spec, &p),
        }),
    );
    // Dramatiq's queued jobs live here: a delete, or a change that replaces the group, takes a
    // final snapshot first (as the database does).
    cache.insert("DeletionPolicy".into(), json!("Snapshot"));
    cache.insert("UpdateReplacePolicy".into(), json!("Snapshot"));
    // No password in it: the cache is reachable from the services' group only, over TLS.
    parameter(
        t,
        spec,
        "redis/url",
        json!({"Fn::Sub": ["rediss://${Host}:${Port}/0", {
            "Host": att("Cache", "PrimaryEndPoint.Address"),
            "Port": att("Cache", "PrimaryEndPoint.Port")}]}),
    );
    outputs.push((
        "redis-endpoint".into(),
        json!({"Fn::Join": [":", [att("Cache", "PrimaryEndPoint.Address"), att("Cache", "PrimaryEndPoint.Port")]]}),
    ));
}
