//! Adapters for the application tier: load balancer, IAM roles, database, cache.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_elasticloadbalancingv2::types as elb;
use harbormaster_core::secrets::Redacted;

use crate::cloud::{Cloud, Resolved};
use crate::model::{Desired, Observed, Props, TAG_ENVIRONMENT, TAG_PROJECT};
use crate::spec::Spec;

impl Cloud {
    fn elb_tags(spec: &Spec, d: &Desired) -> Vec<elb::Tag> {
        Cloud::tags(spec, d)
            .into_iter()
            .map(|(k, v)| elb::Tag::builder().key(k).value(v).build())
            .collect()
    }

    async fn elb_tags_of(&self, arn: &str) -> Result<Vec<(String, String)>> {
        let out = self
            .elb
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .context("DescribeTags")?;
        Ok(out
            .tag_descriptions()
            .iter()
            .flat_map(|t| t.tags())
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    pub(crate) async fn account(&self) -> Result<String> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .context("GetCallerIdentity")?;
        out.account().map(str::to_owned).context("no account")
    }

    fn rds_tags(spec: &Spec, d: &Desired) -> Vec<aws_sdk_rds::types::Tag> {
        Cloud::tags(spec, d)
            .into_iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
            .collect()
    }

    async fn rds_tags_of(&self, arn: &str) -> Result<Vec<(String, String)>> {
        let out = self
            .rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .context("ListTagsForResource")?;
        Ok(out
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    pub(crate) async fn find_app(
        &self,
        spec: &Spec,
        d: &Desired,
        resolved: &Resolved,
    ) -> Result<Option<Observed>> {
        let found = |id: &str| Observed {
            id: id.to_owned(),
            tagged: true,
            ..Default::default()
        };
        Ok(match &d.props {
            Props::LoadBalancer { security_group, .. } => {
                let out = match self
                    .elb
                    .describe_load_balancers()
                    .names(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_load_balancer_not_found_exception()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeLoadBalancers"),
                };
                let Some(lb) = out.load_balancers().first() else {
                    return Ok(None);
                };
                let arn = lb.load_balancer_arn().unwrap_or_default();
                let mut o = found(arn);
                o.tagged = Cloud::has_our_tags(spec, d, &self.elb_tags_of(arn).await?);
                o.attrs.insert(
                    "dns_name".into(),
                    lb.dns_name().unwrap_or_default().to_owned(),
                );
                if let Some(sg) = resolved.get(security_group) {
                    if !lb.security_groups().iter().any(|g| g == &sg.id) {
                        o.drift.push("security group".into());
                    }
                }
                Some(o)
            }
            Props::TargetGroup {
                port,
                health_check_path,
                deregistration_delay_seconds,
                ..
            } => {
                let out = match self
                    .elb
                    .describe_target_groups()
                    .names(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_target_group_not_found_exception()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeTargetGroups"),
                };
                let Some(tg) = out.target_groups().first() else {
                    return Ok(None);
                };
                let arn = tg.target_group_arn().unwrap_or_default();
                let mut o = found(arn);
                o.tagged = Cloud::has_our_tags(spec, d, &self.elb_tags_of(arn).await?);
                if tg.port() != Some(i32::from(*port)) {
                    o.fixed_drift.push(format!("port {:?} ≠ {port}", tg.port()));
                }
                if tg.target_type().map(|t| t.as_str()) != Some("ip") {
                    o.fixed_drift.push("target type is not ip".into());
                }
                if tg.health_check_path() != Some(health_check_path.as_str()) {
                    o.drift
                        .push(format!("health check path → {health_check_path}"));
                }
                let attrs = self
                    .elb
                    .describe_target_group_attributes()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .context("DescribeTargetGroupAttributes")?;
                let delay = attrs
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse::<u32>().ok());
                if delay != Some(*deregistration_delay_seconds) {
                    o.drift.push(format!(
                        "deregistration delay → {deregistration_delay_seconds}s"
                    ));
                }
                Some(o)
            }
            Props::Listener {
                load_balancer,
                port,
                certificate_arn,
            } => {
                let Some(lb) = resolved.get(load_balancer) else {
                    return Ok(None);
                };
                let out = self
                    .elb
                    .describe_listeners()
                    .load_balancer_arn(&lb.id)
                    .send()
                    .await
                    .context("DescribeListeners")?;
                let Some(l) = out
                    .listeners()
                    .iter()
                    .find(|l| l.port() == Some(i32::from(*port)))
                else {
                    return Ok(None);
                };
                let arn = l.listener_arn().unwrap_or_default();
                let mut o = found(arn);
                o.tagged = Cloud::has_our_tags(spec, d, &self.elb_tags_of(arn).await?);
                if let Some(cert) = certificate_arn {
                    if !l
                        .certificates()
                        .iter()
                        .any(|c| c.certificate_arn() == Some(cert.as_str()))
                    {
                        o.drift.push("certificate".into());
                    }
                }
                Some(o)
            }
            Props::ListenerRule {
                listener,
                target_group,
                path,
                ..
            } => {
                let Some(l) = resolved.get(listener) else {
                    return Ok(None);
                };
                let out = self
                    .elb
                    .describe_rules()
                    .listener_arn(&l.id)
                    .send()
                    .await
                    .context("DescribeRules")?;
                let mut hit = None;
                for r in out.rules().iter().filter(|r| r.is_default() != Some(true)) {
                    let arn = r.rule_arn().unwrap_or_default();
                    if Cloud::has_our_tags(spec, d, &self.elb_tags_of(arn).await?) {
                        hit = Some(r.clone());
                        break;
                    }
                }
                let Some(r) = hit else { return Ok(None) };
                let mut o = found(r.rule_arn().unwrap_or_default());
                let paths: Vec<&str> = r
                    .conditions()
                    .iter()
                    .filter(|c| c.field() == Some("path-pattern"))
                    .flat_map(|c| c.values())
                    .map(String::as_str)
                    .collect();
                if paths != [path.as_str()] {
                    o.drift.push(format!("path → {path}"));
                }
                // After a blue/green deployment ECS leaves production on green (or weighted):
                // either colour of this service is right, and apply must not flip it back.
                let blue = resolved
                    .get(target_group)
                    .map(|t| t.id.clone())
                    .unwrap_or_default();
                let green = resolved
                    .get(&target_group.replace("-blue", "-green"))
                    .map(|t| t.id.clone())
                    .unwrap_or_default();
                let forwards_ours = r.actions().iter().any(|a| {
                    a.target_group_arn()
                        .is_some_and(|t| t == blue || t == green)
                        || a.forward_config().is_some_and(|f| {
                            f.target_groups().iter().any(|t| {
                                t.target_group_arn()
                                    .is_some_and(|t| t == blue || t == green)
                            })
                        })
                });
                if !forwards_ours {
                    o.drift.push(format!("forward to {target_group}"));
                }
                Some(o)
            }
            Props::Role {
                service,
                managed,
                policy,
            } => {
                let role = match self.iam.get_role().role_name(&d.name).send().await {
                    Ok(r) => r,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_no_such_entity_exception()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("GetRole"),
                };
                let Some(r) = role.role() else {
                    return Ok(None);
                };
                let tags = self
                    .iam
                    .list_role_tags()
                    .role_name(&d.name)
                    .send()
                    .await
                    .context("ListRoleTags")?;
                let tags: Vec<(String, String)> = tags
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                let mut o = found(r.arn());
                o.tagged = Cloud::has_our_tags(spec, d, &tags);
                o.attrs.insert("arn".into(), r.arn().to_owned());
                let trust = r
                    .assume_role_policy_document()
                    .map(policy_json)
                    .unwrap_or_default();
                if trust != trust_policy(service) {
                    o.drift.push(format!("trust {service}"));
                }
                let attached = self
                    .iam
                    .list_attached_role_policies()
                    .role_name(&d.name)
                    .send()
                    .await
                    .context("ListAttachedRolePolicies")?;
                for m in managed {
                    if !attached
                        .attached_policies()
                        .iter()
                        .any(|a| a.policy_arn() == Some(m.as_str()))
                    {
                        o.drift.push(format!("attach {m}"));
                    }
                }
                if let Some(want) = policy {
                    let want = self.fill(want).await?;
                    let have = match self
                        .iam
                        .get_role_policy()
                        .role_name(&d.name)
                        .policy_name(INLINE)
                        .send()
                        .await
                    {
                        Ok(p) => policy_json(p.policy_document()),
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_no_such_entity_exception()) =>
                        {
                            serde_json::Value::Null
                        }
                        Err(e) => return Err(e).context("GetRolePolicy"),
                    };
                    if have != want {
                        o.drift.push("inline policy".into());
                    }
                }
                Some(o)
            }
            Props::DbSubnetGroup { subnets } => {
                let out = match self
                    .rds
                    .describe_db_subnet_groups()
                    .db_subnet_group_name(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_db_subnet_group_not_found_fault()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeDBSubnetGroups"),
                };
                let Some(g) = out.db_subnet_groups().first() else {
                    return Ok(None);
                };
                let arn = g.db_subnet_group_arn().unwrap_or_default();
                let mut o = found(&d.name);
                o.tagged = Cloud::has_our_tags(spec, d, &self.rds_tags_of(arn).await?);
                let mut have: Vec<&str> = g
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_identifier())
                    .collect();
                let mut want: Vec<&str> = subnets
                    .iter()
                    .filter_map(|k| resolved.get(k).map(|o| o.id.as_str()))
                    .collect();
                have.sort();
                want.sort();
                if have != want {
                    o.drift.push("subnets".into());
                }
                Some(o)
            }
            Props::DbParameterGroup { family } => {
                let out = match self
                    .rds
                    .describe_db_parameter_groups()
                    .db_parameter_group_name(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_db_parameter_group_not_found_fault()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeDBParameterGroups"),
                };
                let Some(g) = out.db_parameter_groups().first() else {
                    return Ok(None);
                };
                let mut o = found(&d.name);
                o.tagged = Cloud::has_our_tags(
                    spec,
                    d,
                    &self
                        .rds_tags_of(g.db_parameter_group_arn().unwrap_or_default())
                        .await?,
                );
                if g.db_parameter_group_family() != Some(family.as_str()) {
                    o.fixed_drift.push(format!(
                        "family {:?} ≠ {family}",
                        g.db_parameter_group_family()
                    ));
                }
                Some(o)
            }
            Props::Database { spec: want, .. } => {
                let out = match self
                    .rds
                    .describe_db_instances()
                    .db_instance_identifier(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeDBInstances"),
                };
                let Some(db) = out
                    .db_instances()
                    .iter()
                    .find(|db| db.db_instance_status() != Some("deleting"))
                else {
                    return Ok(None);
                };
                let tags: Vec<(String, String)> = db
                    .tag_list()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                let mut o = found(&d.name);
                o.tagged = Cloud::has_our_tags(spec, d, &tags);
                if let Some(ep) = db.endpoint() {
                    o.attrs
                        .insert("host".into(), ep.address().unwrap_or_default().to_owned());
                    o.attrs
                        .insert("port".into(), ep.port().unwrap_or(5432).to_string());
                }
                let protected = db.deletion_protection() == Some(true);
                o.attrs
                    .insert("deletion_protection".into(), protected.to_string());
                if protected != want.deletion_protection {
                    o.drift.push(format!(
                        "deletion protection → {}",
                        want.deletion_protection
                    ));
                }
                if db.backup_retention_period() != Some(want.backup_retention_days as i32) {
                    o.drift.push(format!(
                        "backup retention → {} days",
                        want.backup_retention_days
                    ));
                }
                if db.storage_encrypted() != Some(true) {
                    o.fixed_drift.push(
                        "storage is not encrypted (needs a restore into an encrypted instance)"
                            .into(),
                    );
                }
                if db.engine_version() != Some(want.engine_version.as_str()) {
                    o.fixed_drift.push(format!(
                        "engine version {} ≠ {} (upgrades are a person's decision)",
                        db.engine_version().unwrap_or("?"),
                        want.engine_version
                    ));
                }
                Some(o)
            }
            Props::CacheSubnetGroup { .. } => {
                let out = match self
                    .elasticache
                    .describe_cache_subnet_groups()
                    .cache_subnet_group_name(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_cache_subnet_group_not_found_fault()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeCacheSubnetGroups"),
                };
                let Some(g) = out.cache_subnet_groups().first() else {
                    return Ok(None);
                };
                let mut o = found(&d.name);
                o.tagged = self.cache_tagged(spec, d, g.arn()).await?;
                Some(o)
            }
            Props::Cache { .. } => {
                let out = match self
                    .elasticache
                    .describe_replication_groups()
                    .replication_group_id(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_replication_group_not_found_fault()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeReplicationGroups"),
                };
                let Some(g) = out
                    .replication_groups()
                    .iter()
                    .find(|g| g.status() != Some("deleting"))
                else {
                    return Ok(None);
                };
                let mut o = found(&d.name);
                o.tagged = self.cache_tagged(spec, d, g.arn()).await?;
                if let Some(ep) = g.node_groups().first().and_then(|n| n.primary_endpoint()) {
                    o.attrs
                        .insert("host".into(), ep.address().unwrap_or_default().to_owned());
                    o.attrs
                        .insert("port".into(), ep.port().unwrap_or(6379).to_string());
                }
                Some(o)
            }
            other => bail!("not an application-tier resource: {other:?}"),
        })
    }

    async fn cache_tagged(&self, spec: &Spec, d: &Desired, arn: Option<&str>) -> Result<bool> {
        let Some(arn) = arn else { return Ok(false) };
        let out = self
            .elasticache
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .context("ListTagsForResource")?;
        let tags: Vec<(String, String)> = out
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Ok(Cloud::has_our_tags(spec, d, &tags))
    }

    /// Fills `${account}` and `${region}` into a policy document.
    async fn fill(&self, doc: &serde_json::Value) -> Result<serde_json::Value> {
        let account = self.account().await?;
        let text = doc
            .to_string()
            .replace("${account}", &account)
            .replace("${region}", &self.region);
        Ok(serde_json::from_str(&text)?)
    }

    pub(crate) async fn create_app(
        &self,
        spec: &Spec,
        d: &Desired,
        resolved: &Resolved,
    ) -> Result<Observed> {
        let made = |id: &str| Observed {
            id: id.to_owned(),
            tagged: true,
            ..Default::default()
        };
        let id_of = |k: &str| {
            resolved
                .get(k)
                .map(|o| o.id.clone())
                .with_context(|| format!("{k} is not there yet"))
        };
        match &d.props {
            Props::LoadBalancer {
                subnets,
                security_group,
            } => {
                let out = self
                    .elb
                    .create_load_balancer()
                    .name(&d.name)
                    .set_subnets(Some(
                        subnets.iter().map(|s| id_of(s)).collect::<Result<_>>()?,
                    ))
                    .security_groups(id_of(security_group)?)
                    .scheme(elb::LoadBalancerSchemeEnum::InternetFacing)
                    .r#type(elb::LoadBalancerTypeEnum::Application)
                    .set_tags(Some(Cloud::elb_tags(spec, d)))
                    .send()
                    .await
                    .context("CreateLoadBalancer")?;
                let lb = out.load_balancers().first().context("no load balancer")?;
                let mut o = made(lb.load_balancer_arn().unwrap_or_default());
                o.attrs.insert(
                    "dns_name".into(),
                    lb.dns_name().unwrap_or_default().to_owned(),
                );
                Ok(o)
            }
            Props::TargetGroup {
                vpc,
                port,
                health_check_path,
                deregistration_delay_seconds,
            } => {
                let out = self
                    .elb
                    .create_target_group()
                    .name(&d.name)
                    .protocol(elb::ProtocolEnum::Http)
                    .port(i32::from(*port))
                    .vpc_id(id_of(vpc)?)
                    .target_type(elb::TargetTypeEnum::Ip)
                    .health_check_path(health_check_path)
                    .set_tags(Some(Cloud::elb_tags(spec, d)))
                    .send()
                    .await
                    .context("CreateTargetGroup")?;
                let arn = out
                    .target_groups()
                    .first()
                    .and_then(|t| t.target_group_arn())
                    .context("no target group")?
                    .to_owned();
                self.set_deregistration_delay(&arn, *deregistration_delay_seconds)
                    .await?;
                Ok(made(&arn))
            }
            Props::Listener {
                load_balancer,
                port,
                certificate_arn,
            } => {
                let mut req = self
                    .elb
                    .create_listener()
                    .load_balancer_arn(id_of(load_balancer)?)
                    .port(i32::from(*port))
                    .default_actions(not_found_action())
                    .set_tags(Some(Cloud::elb_tags(spec, d)));
                req = match certificate_arn {
                    Some(c) => req
                        .protocol(elb::ProtocolEnum::Https)
                        .certificates(elb::Certificate::builder().certificate_arn(c).build()),
                    None => req.protocol(elb::ProtocolEnum::Http),
                };
                let out = req.send().await.context("CreateListener")?;
                Ok(made(
                    out.listeners()
                        .first()
                        .and_then(|l| l.listener_arn())
                        .context("no listener")?,
                ))
            }
            Props::ListenerRule {
                listener,
                target_group,
                path,
                priority,
            } => {
                let out = self
                    .elb
                    .create_rule()
                    .listener_arn(id_of(listener)?)
                    .priority(*priority as i32)
                    .conditions(
                        elb::RuleCondition::builder()
                            .field("path-pattern")
                            .values(path)
                            .build(),
                    )
                    .actions(
                        elb::Action::builder()
                            .r#type(elb::ActionTypeEnum::Forward)
                            .target_group_arn(id_of(target_group)?)
                            .build(),
                    )
                    .set_tags(Some(Cloud::elb_tags(spec, d)))
                    .send()
                    .await
                    .context("CreateRule")?;
                Ok(made(
                    out.rules()
                        .first()
                        .and_then(|r| r.rule_arn())
                        .context("no rule")?,
                ))
            }
            Props::Role {
                service,
                managed,
                policy,
            } => {
                let out = self
                    .iam
                    .create_role()
                    .role_name(&d.name)
                    .assume_role_policy_document(trust_policy(service).to_string())
                    .description(format!("Harbormaster {}: {}", spec.prefix(), d.key))
                    .set_tags(Some(
                        Cloud::tags(spec, d)
                            .into_iter()
                            .map(|(k, v)| {
                                aws_sdk_iam::types::Tag::builder().key(k).value(v).build()
                            })
                            .collect::<Result<_, _>>()?,
                    ))
                    .send()
                    .await
                    .context("CreateRole")?;
                let arn = out.role().map(|r| r.arn().to_owned()).context("no role")?;
                for m in managed {
                    self.iam
                        .attach_role_policy()
                        .role_name(&d.name)
                        .policy_arn(m)
                        .send()
                        .await
                        .context("AttachRolePolicy")?;
                }
                if let Some(p) = policy {
                    let doc = self.fill(p).await?;
                    self.iam
                        .put_role_policy()
                        .role_name(&d.name)
                        .policy_name(INLINE)
                        .policy_document(doc.to_string())
                        .send()
                        .await
                        .context("PutRolePolicy")?;
                }
                let mut o = made(&arn);
                o.attrs.insert("arn".into(), arn.clone());
                Ok(o)
            }
            Props::DbSubnetGroup { subnets } => {
                self.rds
                    .create_db_subnet_group()
                    .db_subnet_group_name(&d.name)
                    .db_subnet_group_description(format!(
                        "{} database: private subnets",
                        spec.prefix()
                    ))
                    .set_subnet_ids(Some(
                        subnets.iter().map(|s| id_of(s)).collect::<Result<_>>()?,
                    ))
                    .set_tags(Some(Cloud::rds_tags(spec, d)))
                    .send()
                    .await
                    .context("CreateDBSubnetGroup")?;
                Ok(made(&d.name))
            }
            Props::DbParameterGroup { family } => {
                self.rds
                    .create_db_parameter_group()
                    .db_parameter_group_name(&d.name)
                    .db_parameter_group_family(family)
                    .description(format!("{} database parameters", spec.prefix()))
                    .set_tags(Some(Cloud::rds_tags(spec, d)))
                    .send()
                    .await
                    .context("CreateDBParameterGroup")?;
                Ok(made(&d.name))
            }
            Props::Database {
                spec: db,
                subnet_group,
                parameter_group,
                security_group,
            } => {
                let password = self.database_password(spec).await?;
                self.rds
                    .create_db_instance()
                    .db_instance_identifier(&d.name)
                    .engine("postgres")
                    .engine_version(&db.engine_version)
                    .db_instance_class(&db.instance_class)
                    .allocated_storage(db.allocated_storage_gb as i32)
                    .db_name(&db.name)
                    .master_username(&db.username)
                    .master_user_password(password.expose())
                    .db_subnet_group_name(id_of(subnet_group)?)
                    .db_parameter_group_name(id_of(parameter_group)?)
                    .vpc_security_group_ids(id_of(security_group)?)
                    .storage_encrypted(true)
                    .deletion_protection(db.deletion_protection)
                    .backup_retention_period(db.backup_retention_days as i32)
                    .publicly_accessible(false)
                    .set_tags(Some(Cloud::rds_tags(spec, d)))
                    .send()
                    .await
                    // The SDK's error holds AWS's answer, never the request: no password in it.
                    .context("CreateDBInstance")?;
                self.wait_database(&d.name).await
            }
            Props::CacheSubnetGroup { subnets } => {
                self.elasticache
                    .create_cache_subnet_group()
                    .cache_subnet_group_name(&d.name)
                    .cache_subnet_group_description(format!(
                        "{} cache: private subnets",
                        spec.prefix()
                    ))
                    .set_subnet_ids(Some(
                        subnets.iter().map(|s| id_of(s)).collect::<Result<_>>()?,
                    ))
                    .set_tags(Some(
                        Cloud::tags(spec, d)
                            .into_iter()
                            .map(|(k, v)| {
                                aws_sdk_elasticache::types::Tag::builder()
                                    .key(k)
                                    .value(v)
                                    .build()
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .context("CreateCacheSubnetGroup")?;
                Ok(made(&d.name))
            }
            Props::Cache {
                node_type,
                subnet_group,
                security_group,
            } => {
                self.elasticache
                    .create_replication_group()
                    .replication_group_id(&d.name)
                    .replication_group_description(format!("{} Redis", spec.prefix()))
                    .engine("redis")
                    .cache_node_type(node_type)
                    .num_cache_clusters(1)
                    .cache_subnet_group_name(id_of(subnet_group)?)
                    .security_group_ids(id_of(security_group)?)
                    .at_rest_encryption_enabled(true)
                    .transit_encryption_enabled(true)
                    .set_tags(Some(
                        Cloud::tags(spec, d)
                            .into_iter()
                            .map(|(k, v)| {
                                aws_sdk_elasticache::types::Tag::builder()
                                    .key(k)
                                    .value(v)
                                    .build()
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .context("CreateReplicationGroup")?;
                self.wait_cache(&d.name).await
            }
            other => bail!("not an application-tier resource: {other:?}"),
        }
    }

    /// The stored master password, or a new one stored before the database is created, so that
    /// a crash in between cannot lose it. Never printed, never logged.
    async fn database_password(&self, spec: &Spec) -> Result<Redacted<String>> {
        let name = spec.password_parameter();
        match self
            .ssm
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(p) => {
                if let Some(v) = p.parameter().and_then(|p| p.value()) {
                    return Ok(Redacted::new(v.to_owned()));
                }
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) => {}
            Err(e) => return Err(e).context("GetParameter (database password)"),
        }
        let password = Redacted::new(generate_password()?);
        self.ssm
            .put_parameter()
            .name(&name)
            .value(password.expose())
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .description("Master password of the environment's database (harbormaster-bootstrap)")
            .tags(
                aws_sdk_ssm::types::Tag::builder()
                    .key(TAG_PROJECT)
                    .value(&spec.project)
                    .build()?,
            )
            .tags(
                aws_sdk_ssm::types::Tag::builder()
                    .key(TAG_ENVIRONMENT)
                    .value(&spec.environment)
                    .build()?,
            )
            .send()
            .await
            .context("PutParameter (database password)")?;
        Ok(password)
    }

    async fn set_deregistration_delay(&self, arn: &str, seconds: u32) -> Result<()> {
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                elb::TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(seconds.to_string())
                    .build(),
            )
            .send()
            .await
            .context("ModifyTargetGroupAttributes")?;
        Ok(())
    }

    pub(crate) async fn update_app(
        &self,
        d: &Desired,
        o: &Observed,
        resolved: &Resolved,
        changes: &[String],
    ) -> Result<()> {
        let id_of = |k: &str| {
            resolved
                .get(k)
                .map(|o| o.id.clone())
                .with_context(|| format!("{k} is not there yet"))
        };
        match &d.props {
            Props::LoadBalancer { security_group, .. } => {
                self.elb
                    .set_security_groups()
                    .load_balancer_arn(&o.id)
                    .security_groups(id_of(security_group)?)
                    .send()
                    .await
                    .context("SetSecurityGroups")?;
            }
            Props::TargetGroup {
                health_check_path,
                deregistration_delay_seconds,
                ..
            } => {
                for c in changes {
                    if c.starts_with("health check path") {
                        self.elb
                            .modify_target_group()
                            .target_group_arn(&o.id)
                            .health_check_path(health_check_path)
                            .send()
                            .await
                            .context("ModifyTargetGroup")?;
                    } else if c.starts_with("deregistration delay") {
                        self.set_deregistration_delay(&o.id, *deregistration_delay_seconds)
                            .await?;
                    }
                }
            }
            Props::Listener {
                certificate_arn: Some(c),
                ..
            } => {
                self.elb
                    .modify_listener()
                    .listener_arn(&o.id)
                    .certificates(elb::Certificate::builder().certificate_arn(c).build())
                    .send()
                    .await
                    .context("ModifyListener")?;
            }
            Props::ListenerRule {
                target_group, path, ..
            } => {
                let mut req = self.elb.modify_rule().rule_arn(&o.id).conditions(
                    elb::RuleCondition::builder()
                        .field("path-pattern")
                        .values(path)
                        .build(),
                );
                if changes.iter().any(|c| c.starts_with("forward")) {
                    req = req.actions(
                        elb::Action::builder()
                            .r#type(elb::ActionTypeEnum::Forward)
                            .target_group_arn(id_of(target_group)?)
                            .build(),
                    );
                }
                req.send().await.context("ModifyRule")?;
            }
            Props::Role {
                service,
                managed,
                policy,
            } => {
                for c in changes {
                    if c.starts_with("trust") {
                        self.iam
                            .update_assume_role_policy()
                            .role_name(&d.name)
                            .policy_document(trust_policy(service).to_string())
                            .send()
                            .await
                            .context("UpdateAssumeRolePolicy")?;
                    } else if let Some(arn) = c.strip_prefix("attach ") {
                        self.iam
                            .attach_role_policy()
                            .role_name(&d.name)
                            .policy_arn(arn)
                            .send()
                            .await
                            .context("AttachRolePolicy")?;
                    } else if c == "inline policy" {
                        if let Some(p) = policy {
                            let doc = self.fill(p).await?;
                            self.iam
                                .put_role_policy()
                                .role_name(&d.name)
                                .policy_name(INLINE)
                                .policy_document(doc.to_string())
                                .send()
                                .await
                                .context("PutRolePolicy")?;
                        }
                    }
                }
                let _ = managed;
            }
            Props::DbSubnetGroup { subnets } => {
                self.rds
                    .modify_db_subnet_group()
                    .db_subnet_group_name(&d.name)
                    .set_subnet_ids(Some(
                        subnets.iter().map(|s| id_of(s)).collect::<Result<_>>()?,
                    ))
                    .send()
                    .await
                    .context("ModifyDBSubnetGroup")?;
            }
            Props::Database { spec: db, .. } => {
                self.rds
                    .modify_db_instance()
                    .db_instance_identifier(&d.name)
                    .deletion_protection(db.deletion_protection)
                    .backup_retention_period(db.backup_retention_days as i32)
                    .apply_immediately(true)
                    .send()
                    .await
                    .context("ModifyDBInstance")?;
            }
            other => bail!("{} cannot be changed in place ({other:?})", d.key),
        }
        Ok(())
    }

    pub(crate) async fn delete_app(
        &self,
        spec: &Spec,
        d: &Desired,
        o: &Observed,
        final_snapshot: bool,
    ) -> Result<()> {
        match &d.props {
            Props::LoadBalancer { .. } => {
                self.elb
                    .delete_load_balancer()
                    .load_balancer_arn(&o.id)
                    .send()
                    .await
                    .context("DeleteLoadBalancer")?;
            }
            Props::TargetGroup { .. } => {
                self.elb
                    .delete_target_group()
                    .target_group_arn(&o.id)
                    .send()
                    .await
                    .context("DeleteTargetGroup")?;
            }
            Props::Listener { .. } => {
                self.elb
                    .delete_listener()
                    .listener_arn(&o.id)
                    .send()
                    .await
                    .context("DeleteListener")?;
            }
            Props::ListenerRule { .. } => {
                self.elb
                    .delete_rule()
                    .rule_arn(&o.id)
                    .send()
                    .await
                    .context("DeleteRule")?;
            }
            Props::Role { .. } => {
                let attached = self
                    .iam
                    .list_attached_role_policies()
                    .role_name(&d.name)
                    .send()
                    .await
                    .context("ListAttachedRolePolicies")?;
                for a in attached.attached_policies() {
                    if let Some(arn) = a.policy_arn() {
                        self.iam
                            .detach_role_policy()
                            .role_name(&d.name)
                            .policy_arn(arn)
                            .send()
                            .await
                            .context("DetachRolePolicy")?;
                    }
                }
                let inline = self
                    .iam
                    .list_role_policies()
                    .role_name(&d.name)
                    .send()
                    .await
                    .context("ListRolePolicies")?;
                for name in inline.policy_names() {
                    self.iam
                        .delete_role_policy()
                        .role_name(&d.name)
                        .policy_name(name)
                        .send()
                        .await
                        .context("DeleteRolePolicy")?;
                }
                self.iam
                    .delete_role()
                    .role_name(&d.name)
                    .send()
                    .await
                    .context("DeleteRole")?;
            }
            Props::DbSubnetGroup { .. } => {
                self.rds
                    .delete_db_subnet_group()
                    .db_subnet_group_name(&d.name)
                    .send()
                    .await
                    .context("DeleteDBSubnetGroup")?;
            }
            Props::DbParameterGroup { .. } => {
                self.rds
                    .delete_db_parameter_group()
                    .db_parameter_group_name(&d.name)
                    .send()
                    .await
                    .context("DeleteDBParameterGroup")?;
            }
            Props::Database { .. } => {
                let mut req = self
                    .rds
                    .delete_db_instance()
                    .db_instance_identifier(&d.name);
                req = if final_snapshot {
                    let id = format!(
                        "{}-final-{}",
                        d.name,
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)?
                            .as_secs()
                    );
                    eprintln!("  taking final snapshot {id}");
                    req.skip_final_snapshot(false)
                        .final_db_snapshot_identifier(id)
                } else {
                    req.skip_final_snapshot(true)
                };
                req.send().await.context("DeleteDBInstance")?;
                self.wait_database_gone(&d.name).await?;
                // The password goes with the database, unless a snapshot still needs it.
                if !final_snapshot {
                    let name = spec.password_parameter();
                    let _ = self.ssm.delete_parameter().name(name).send().await;
                }
            }
            Props::CacheSubnetGroup { .. } => {
                self.elasticache
                    .delete_cache_subnet_group()
                    .cache_subnet_group_name(&d.name)
                    .send()
                    .await
                    .context("DeleteCacheSubnetGroup")?;
            }
            Props::Cache { .. } => {
                self.elasticache
                    .delete_replication_group()
                    .replication_group_id(&d.name)
                    .send()
                    .await
                    .context("DeleteReplicationGroup")?;
                self.wait_cache_gone(&d.name).await?;
            }
            other => bail!("not an application-tier resource: {other:?}"),
        }
        Ok(())
    }

    /// RDS takes minutes in AWS: wait with progress (the emulator answers at once).
    async fn wait_database(&self, id: &str) -> Result<Observed> {
        for i in 0..240 {
            let out = self
                .rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .context("DescribeDBInstances")?;
            let db = out
                .db_instances()
                .first()
                .context("the database vanished")?;
            match db.db_instance_status() {
                Some("available") => {
                    let mut o = Observed {
                        id: id.to_owned(),
                        tagged: true,
                        ..Default::default()
                    };
                    if let Some(ep) = db.endpoint() {
                        o.attrs
                            .insert("host".into(), ep.address().unwrap_or_default().to_owned());
                        o.attrs
                            .insert("port".into(), ep.port().unwrap_or(5432).to_string());
                    }
                    return Ok(o);
                }
                Some("failed") | Some("incompatible-parameters") | Some("incompatible-network") => {
                    bail!(
                        "database {id} is {}",
                        db.db_instance_status().unwrap_or("?")
                    )
                }
                status => {
                    if i % 6 == 0 {
                        eprintln!(
                            "  waiting for database {id} to be available (now {})…",
                            status.unwrap_or("?")
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
        bail!("database {id} was not available after 40 minutes")
    }

    async fn wait_database_gone(&self, id: &str) -> Result<()> {
        for i in 0..240 {
            match self
                .rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
            {
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e).context("DescribeDBInstances"),
                Ok(out) if out.db_instances().is_empty() => return Ok(()),
                Ok(_) => {
                    if i % 6 == 0 {
                        eprintln!("  waiting for database {id} to be deleted…");
                    }
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
        bail!("database {id} was still there after 40 minutes")
    }

    async fn wait_cache(&self, id: &str) -> Result<Observed> {
        for i in 0..180 {
            let out = self
                .elasticache
                .describe_replication_groups()
                .replication_group_id(id)
                .send()
                .await
                .context("DescribeReplicationGroups")?;
            let g = out
                .replication_groups()
                .first()
                .context("the cache vanished")?;
            if g.status() == Some("available") {
                let mut o = Observed {
                    id: id.to_owned(),
                    tagged: true,
                    ..Default::default()
                };
                if let Some(ep) = g.node_groups().first().and_then(|n| n.primary_endpoint()) {
                    o.attrs
                        .insert("host".into(), ep.address().unwrap_or_default().to_owned());
                    o.attrs
                        .insert("port".into(), ep.port().unwrap_or(6379).to_string());
                }
                return Ok(o);
            }
            if i % 6 == 0 {
                eprintln!(
                    "  waiting for cache {id} to be available (now {})…",
                    g.status().unwrap_or("?")
                );
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        bail!("cache {id} was not available after 30 minutes")
    }

    async fn wait_cache_gone(&self, id: &str) -> Result<()> {
        for _ in 0..180 {
            match self
                .elasticache
                .describe_replication_groups()
                .replication_group_id(id)
                .send()
                .await
            {
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_replication_group_not_found_fault()) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e).context("DescribeReplicationGroups"),
                Ok(out) if out.replication_groups().is_empty() => return Ok(()),
                Ok(_) => tokio::time::sleep(Duration::from_secs(10)).await,
            }
        }
        bail!("cache {id} was still there after 30 minutes")
    }
}

/// The name of the inline policy bootstrap manages on a role.
const INLINE: &str = "harbormaster";

fn trust_policy(service: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
}

/// IAM returns policy documents URL-encoded; the emulator sometimes does not.
fn policy_json(doc: &str) -> serde_json::Value {
    serde_json::from_str(doc)
        .or_else(|_| serde_json::from_str(&percent_decode(doc)))
        .unwrap_or(serde_json::Value::Null)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found_action() -> elb::Action {
    elb::Action::builder()
        .r#type(elb::ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            elb::FixedResponseActionConfig::builder()
                .status_code("404")
                .content_type("text/plain")
                .message_body("no route")
                .build(),
        )
        .build()
}

/// 32 characters from the letters and digits (RDS forbids `/`, `@`, `"` and spaces).
fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - (256 % ALPHABET.len());
        out.extend(
            buf.iter()
                .filter(|b| (**b as usize) < limit)
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char),
        );
    }
    out.truncate(32);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_safe_for_rds() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn policy_documents_decode_either_way() {
        let doc = trust_policy("ecs-tasks.amazonaws.com");
        assert_eq!(policy_json(&doc.to_string()), doc);
        let encoded = doc
            .to_string()
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace(':', "%3A");
        assert_eq!(policy_json(&encoded), doc);
    }
}
