//! The adapters: find, create, update and delete each kind of resource with the AWS SDK.
//! Finding uses only Describe/List/Get calls, so a plan, or an apply with nothing to do, changes
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_ec2::types::{
    DomainType, Filter, IpPermission, IpRange, ResourceType, Tag as Ec2Tag, TagSpecification,
    UserIdGroupPair,
};

use crate::model::{
    Desired, Ingress, Kind, Observed, Props, Source, TAG_ENVIRONMENT, TAG_PROJECT, TAG_ROLE,
};
use crate::spec::Spec;

pub struct Cloud {
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub iam: aws_sdk_iam::Client,
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: String,
}

/// Ids (and attributes) of resources already found or made, by key.
pub type Resolved = BTreeMap<String, Observed>;

impl Cloud {
    pub fn new(sdk: &aws_config::SdkConfig) -> Cloud {
        Cloud {
            ec2: aws_sdk_ec2::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(true)
                    .build(),
            ),
            sns: aws_sdk_sns::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            rds: aws_sdk_rds::Client::new(sdk),
            elasticache: aws_sdk_elasticache::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }

    /// The first two availability zones of the region, when the spec names none.
    pub async fn zones(&self, spec: &Spec) -> Result<[String; 2]> {
        if let Some(z) = &spec.zones {
            return Ok(z.clone());
        }
        let out = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .context("DescribeAvailabilityZones")?;
        let mut names: Vec<String> = out
            .availability_zones()
            .iter()
            .filter(|z| z.state().map(|s| s.as_str()) == Some("available"))
            .filter_map(|z| z.zone_name().map(str::to_owned))
            .collect();
        names.sort();
        match names.as_slice() {
            [a, b, ..] => Ok([a.clone(), b.clone()]),
            _ => bail!(
                "region {} has fewer than two availability zones",
                self.region
            ),
        }
    }

    pub(crate) fn tags(spec: &Spec, d: &Desired) -> Vec<(String, String)> {
        vec![
            ("Name".into(), d.name.clone()),
            (TAG_PROJECT.into(), spec.project.clone()),
            (TAG_ENVIRONMENT.into(), spec.environment.clone()),
            (TAG_ROLE.into(), d.key.clone()),
        ]
    }

    pub(crate) fn has_our_tags(spec: &Spec, d: &Desired, tags: &[(String, String)]) -> bool {
        let get = |k: &str| {
            tags.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        get(TAG_PROJECT) == Some(spec.project.as_str())
            && get(TAG_ENVIRONMENT) == Some(spec.environment.as_str())
            && get(TAG_ROLE) == Some(d.key.as_str())
    }

    fn ec2_tag_spec(spec: &Spec, d: &Desired, rt: ResourceType) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(
                Cloud::tags(spec, d)
                    .into_iter()
                    .map(|(k, v)| Ec2Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build()
    }

    /// EC2 finds by our tags; failing that, by the `Name` tag alone (someone else's resource).
    fn ec2_filters(spec: &Spec, d: &Desired, ours: bool) -> Vec<Filter> {
        let f = |k: &str, v: &str| Filter::builder().name(format!("tag:{k}")).values(v).build();
        if ours {
            vec![
                f(TAG_PROJECT, &spec.project),
                f(TAG_ENVIRONMENT, &spec.environment),
                f(TAG_ROLE, &d.key),
            ]
        } else {
            vec![f("Name", &d.name)]
        }
    }

    fn id_of<'a>(resolved: &'a Resolved, key: &str) -> Result<&'a str> {
        resolved
            .get(key)
            .map(|o| o.id.as_str())
            .ok_or_else(|| anyhow!("{key} is not there yet"))
    }

    pub async fn find(
        &self,
        spec: &Spec,
        d: &Desired,
        resolved: &Resolved,
        zones: &[String; 2],
    ) -> Result<Option<Observed>> {
        for ours in [true, false] {
            let found = self.find_one(spec, d, resolved, zones, ours).await?;
            if let Some(mut o) = found {
                if !ours {
                    o.tagged = false;
                }
                return Ok(Some(o));
            }
            // Non-EC2 resources are found by name; one look is enough.
            if !matches!(
                d.kind,
                Kind::Vpc
                    | Kind::Subnet
                    | Kind::InternetGateway
                    | Kind::ElasticIp
                    | Kind::NatGateway
                    | Kind::RouteTable
                    | Kind::SecurityGroup
            ) {
                break;
            }
        }
        Ok(None)
    }

    async fn find_one(
        &self,
        spec: &Spec,
        d: &Desired,
        resolved: &Resolved,
        zones: &[String; 2],
        ours: bool,
    ) -> Result<Option<Observed>> {
        if d.kind.is_app_tier() {
            return self.find_app(spec, d, resolved).await;
        }
        let filters = Cloud::ec2_filters(spec, d, ours);
        let found = |id: &str| Observed {
            id: id.to_owned(),
            tagged: true,
            ..Default::default()
        };
        Ok(match &d.props {
            Props::Vpc { cidr } => {
                let out = self
                    .ec2
                    .describe_vpcs()
                    .set_filters(Some(filters))
                    .send()
                    .await
                    .context("DescribeVpcs")?;
                out.vpcs().first().map(|v| {
                    let mut o = found(v.vpc_id().unwrap_or_default());
                    if v.cidr_block() != Some(cidr.as_str()) {
                        o.fixed_drift
                            .push(format!("CIDR {} ≠ {cidr}", v.cidr_block().unwrap_or("?")));
                    }
                    o
                })
            }
            Props::Subnet { cidr, zone, .. } => {
                let out = self
                    .ec2
                    .describe_subnets()
                    .set_filters(Some(filters))
                    .send()
                    .await
                    .context("DescribeSubnets")?;
                out.subnets().first().map(|s| {
                    let mut o = found(s.subnet_id().unwrap_or_default());
                    if s.cidr_block() != Some(cidr.as_str()) {
                        o.fixed_drift
                            .push(format!("CIDR {} ≠ {cidr}", s.cidr_block().unwrap_or("?")));
                    }
                    if s.availability_zone() != Some(zones[*zone].as_str()) {
                        o.fixed_drift.push(format!(
                            "zone {} ≠ {}",
                            s.availability_zone().unwrap_or("?"),
                            zones[*zone]
                        ));
                    }
                    o
                })
            }
            Props::InternetGateway { vpc } => {
                let out = self
                    .ec2
                    .describe_internet_gateways()
                    .set_filters(Some(filters))
                    .send()
                    .await
                    .context("DescribeInternetGateways")?;
                out.internet_gateways().first().map(|g| {
                    let mut o = found(g.internet_gateway_id().unwrap_or_default());
                    let want = resolved.get(vpc).map(|v| v.id.as_str());
                    if want.is_some() && !g.attachments().iter().any(|a| a.vpc_id() == want) {
                        o.drift.push("attach to the VPC".into());
                    }
                    o
                })
            }
            Props::ElasticIp => {
                let out = self
                    .ec2
                    .describe_addresses()
                    .set_filters(Some(filters))
                    .send()
                    .await
                    .context("DescribeAddresses")?;
                out.addresses().first().map(|a| {
                    let mut o = found(a.allocation_id().unwrap_or_default());
                    o.attrs.insert(
                        "public_ip".into(),
                        a.public_ip().unwrap_or_default().to_owned(),
                    );
                    o
                })
            }
            Props::NatGateway { .. } => {
                let out = self
                    .ec2
                    .describe_nat_gateways()
                    .set_filter(Some(filters))
                    .send()
                    .await
                    .context("DescribeNatGateways")?;
                out.nat_gateways()
                    .iter()
                    .find(|n| {
                        !matches!(
                            n.state().map(|s| s.as_str()),
                            Some("deleted") | Some("deleting") | Some("failed")
                        )
                    })
                    .map(|n| found(n.nat_gateway_id().unwrap_or_default()))
            }
            Props::RouteTable {
                subnets,
                default_route,
                ..
            } => {
                let out = self
                    .ec2
                    .describe_route_tables()
                    .set_filters(Some(filters))
                    .send()
                    .await
                    .context("DescribeRouteTables")?;
                out.route_tables().first().map(|t| {
                    let mut o = found(t.route_table_id().unwrap_or_default());
                    if let Some(target) = default_route {
                        let want = resolved
                            .get(target)
                            .map(|r| r.id.clone())
                            .unwrap_or_default();
                        let has = t.routes().iter().any(|r| {
                            r.destination_cidr_block() == Some("0.0.0.0/0")
                                && (r.gateway_id() == Some(want.as_str())
                                    || r.nat_gateway_id() == Some(want.as_str()))
                        });
                        if !has {
                            o.drift.push(format!("route 0.0.0.0/0 → {target}"));
                        }
                    }
                    for s in subnets {
                        let want = resolved.get(s).map(|r| r.id.clone()).unwrap_or_default();
                        if !t
                            .associations()
                            .iter()
                            .any(|a| a.subnet_id() == Some(want.as_str()))
                        {
                            o.drift.push(format!("associate {s}"));
                        }
                    }
                    o
                })
            }
            Props::SecurityGroup { ingress, .. } => {
                let out = self
                    .ec2
                    .describe_security_groups()
                    .set_filters(Some(filters))
                    .send()
                    .await
                    .context("DescribeSecurityGroups")?;
                out.security_groups().first().map(|g| {
                    let mut o = found(g.group_id().unwrap_or_default());
                    let have = rules_of(g.ip_permissions());
                    for rule in ingress {
                        let want = rule_key(rule, resolved);
                        if !have.contains(&want) {
                            o.drift.push(format!("allow {}", describe_rule(rule)));
                        }
                    }
                    let wanted: Vec<_> = ingress.iter().map(|r| rule_key(r, resolved)).collect();
                    for extra in have.iter().filter(|h| !wanted.contains(h)) {
                        o.drift
                            .push(format!("revoke tcp {} from {}", extra.0, extra.1));
                    }
                    o
                })
            }
            Props::Cluster { container_insights } => {
                let out = self
                    .ecs
                    .describe_clusters()
                    .clusters(&d.name)
                    .include(aws_sdk_ecs::types::ClusterField::Tags)
                    .include(aws_sdk_ecs::types::ClusterField::Settings)
                    .send()
                    .await
                    .context("DescribeClusters")?;
                out.clusters()
                    .iter()
                    .find(|c| c.status() == Some("ACTIVE"))
                    .map(|c| {
                        let tags: Vec<(String, String)> = c
                            .tags()
                            .iter()
                            .map(|t| {
                                (
                                    t.key().unwrap_or_default().to_owned(),
                                    t.value().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect();
                        let mut o = found(c.cluster_arn().unwrap_or_default());
                        o.tagged = Cloud::has_our_tags(spec, d, &tags);
                        let insights = c
                            .settings()
                            .iter()
                            .find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights"))
                            .and_then(|s| s.value())
                            .unwrap_or("disabled");
                        let want = if *container_insights {
                            "enabled"
                        } else {
                            "disabled"
                        };
                        if insights != want && !(insights == "enhanced" && *container_insights) {
                            o.drift
                                .push(format!("Container Insights {insights} → {want}"));
                        }
                        for cp in ["FARGATE", "FARGATE_SPOT"] {
                            if !c.capacity_providers().iter().any(|x| x == cp) {
                                o.drift.push(format!("capacity provider {cp}"));
                            }
                        }
                        o
                    })
            }
            Props::Repository {
                immutable_tags,
                keep_images,
            } => {
                let out = match self
                    .ecr
                    .describe_repositories()
                    .repository_names(&d.name)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_repository_not_found_exception()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("DescribeRepositories"),
                };
                let Some(r) = out.repositories().first() else {
                    return Ok(None);
                };
                let arn = r.repository_arn().unwrap_or_default().to_owned();
                let tags = self
                    .ecr
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .context("ListTagsForResource")?;
                let tags: Vec<(String, String)> = tags
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                let mut o = found(&arn);
                o.tagged = Cloud::has_our_tags(spec, d, &tags);
                o.attrs.insert(
                    "uri".into(),
                    r.repository_uri().unwrap_or_default().to_owned(),
                );
                let mutability = r
                    .image_tag_mutability()
                    .map(|m| m.as_str())
                    .unwrap_or("MUTABLE");
                if (mutability == "IMMUTABLE") != *immutable_tags {
                    o.drift.push(format!("tag mutability {mutability}"));
                }
                if !r
                    .image_scanning_configuration()
                    .is_some_and(|s| s.scan_on_push())
                {
                    o.drift.push("scan on push".into());
                }
                let policy = match self
                    .ecr
                    .get_lifecycle_policy()
                    .repository_name(&d.name)
                    .send()
                    .await
                {
                    Ok(p) => p.lifecycle_policy_text().map(str::to_owned),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_lifecycle_policy_not_found_exception()) =>
                    {
                        None
                    }
                    Err(e) => return Err(e).context("GetLifecyclePolicy"),
                };
                let keeps = policy
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
                    .and_then(|v| v["rules"][0]["selection"]["countNumber"].as_u64());
                if keeps != Some(u64::from(*keep_images)) {
                    o.drift
                        .push(format!("lifecycle: keep the last {keep_images} images"));
                }
                Some(o)
            }
            Props::LogGroup { retention_days } => {
                let out = self
                    .logs
                    .describe_log_groups()
                    .log_group_name_prefix(&d.name)
                    .send()
                    .await
                    .context("DescribeLogGroups")?;
                let Some(g) = out
                    .log_groups()
                    .iter()
                    .find(|g| g.log_group_name() == Some(d.name.as_str()))
                else {
                    return Ok(None);
                };
                // ListTagsLogGroup takes the name; its successor needs an ARN that the emulator
                // does not always report.
                #[allow(deprecated)]
                let tags = self
                    .logs
                    .list_tags_log_group()
                    .log_group_name(&d.name)
                    .send()
                    .await
                    .context("ListTagsLogGroup")?;
                let tags: Vec<(String, String)> = tags
                    .tags()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                let mut o = found(&d.name);
                o.tagged = Cloud::has_our_tags(spec, d, &tags);
                if g.retention_in_days() != Some(*retention_days as i32) {
                    o.drift.push(format!(
                        "retention {:?} → {retention_days} days",
                        g.retention_in_days()
                    ));
                }
                Some(o)
            }
            Props::Topic => {
                let mut token = None;
                let mut arn = None;
                loop {
                    let out = self
                        .sns
                        .list_topics()
                        .set_next_token(token)
                        .send()
                        .await
                        .context("ListTopics")?;
                    arn = arn.or_else(|| {
                        out.topics()
                            .iter()
                            .filter_map(|t| t.topic_arn())
                            .find(|a| a.rsplit(':').next() == Some(d.name.as_str()))
                            .map(str::to_owned)
                    });
                    token = out.next_token().map(str::to_owned);
                    if token.is_none() || arn.is_some() {
                        break;
                    }
                }
                let Some(arn) = arn else { return Ok(None) };
                let tags = self
                    .sns
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .context("ListTagsForResource")?;
                let tags: Vec<(String, String)> = tags
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                let mut o = found(&arn);
                o.tagged = Cloud::has_our_tags(spec, d, &tags);
                Some(o)
            }
            Props::Bucket => {
                match self.s3.head_bucket().bucket(&d.name).send().await {
                    Ok(_) => {}
                    Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                        return Ok(None)
                    }
                    Err(e) => return Err(e).context("HeadBucket"),
                }
                let tags = match self.s3.get_bucket_tagging().bucket(&d.name).send().await {
                    Ok(t) => t
                        .tag_set()
                        .iter()
                        .map(|t| (t.key().to_owned(), t.value().to_owned()))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                let mut o = found(&d.name);
                o.tagged = Cloud::has_our_tags(spec, d, &tags);
                let versioning = self
                    .s3
                    .get_bucket_versioning()
                    .bucket(&d.name)
                    .send()
                    .await
                    .context("GetBucketVersioning")?;
                if versioning.status().map(|s| s.as_str()) != Some("Enabled") {
                    o.drift.push("versioning".into());
                }
                let encrypted = self
                    .s3
                    .get_bucket_encryption()
                    .bucket(&d.name)
                    .send()
                    .await
                    .is_ok_and(|e| {
                        e.server_side_encryption_configuration()
                            .is_some_and(|c| !c.rules().is_empty())
                    });
                if !encrypted {
                    o.drift.push("default encryption".into());
                }
                let blocked = self
                    .s3
                    .get_public_access_block()
                    .bucket(&d.name)
                    .send()
                    .await
                    .is_ok_and(|p| {
                        p.public_access_block_configuration().is_some_and(|c| {
                            c.block_public_acls() == Some(true)
                                && c.ignore_public_acls() == Some(true)
                                && c.block_public_policy() == Some(true)
                                && c.restrict_public_buckets() == Some(true)
                        })
                    });
                if !blocked {
                    o.drift.push("block public access".into());
                }
                Some(o)
            }
            _ => unreachable!("the application tier is handled in cloud_app"),
        })
    }

    pub async fn create(
        &self,
        spec: &Spec,
        d: &Desired,
        resolved: &Resolved,
        zones: &[String; 2],
    ) -> Result<Observed> {
        if d.kind.is_app_tier() {
            return self.create_app(spec, d, resolved).await;
        }
        let made = |id: &str| Observed {
            id: id.to_owned(),
            tagged: true,
            ..Default::default()
        };
        let kv_tags = Cloud::tags(spec, d);
        match &d.props {
            Props::Vpc { cidr } => {
                let out = self
                    .ec2
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::Vpc))
                    .send()
                    .await
                    .context("CreateVpc")?;
                let id = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .context("CreateVpc: no id")?
                    .to_owned();
                // Services reach AWS endpoints and each other by DNS names.
                self.ec2
                    .modify_vpc_attribute()
                    .vpc_id(&id)
                    .enable_dns_hostnames(
                        aws_sdk_ec2::types::AttributeBooleanValue::builder()
                            .value(true)
                            .build(),
                    )
                    .send()
                    .await
                    .context("ModifyVpcAttribute")?;
                Ok(made(&id))
            }
            Props::Subnet {
                vpc, cidr, zone, ..
            } => {
                let out = self
                    .ec2
                    .create_subnet()
                    .vpc_id(Cloud::id_of(resolved, vpc)?)
                    .cidr_block(cidr)
                    .availability_zone(&zones[*zone])
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::Subnet))
                    .send()
                    .await
                    .context("CreateSubnet")?;
                Ok(made(
                    out.subnet()
                        .and_then(|s| s.subnet_id())
                        .context("CreateSubnet: no id")?,
                ))
            }
            Props::InternetGateway { vpc } => {
                let out = self
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::InternetGateway))
                    .send()
                    .await
                    .context("CreateInternetGateway")?;
                let id = out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .context("no id")?
                    .to_owned();
                self.ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(&id)
                    .vpc_id(Cloud::id_of(resolved, vpc)?)
                    .send()
                    .await
                    .context("AttachInternetGateway")?;
                Ok(made(&id))
            }
            Props::ElasticIp => {
                let out = self
                    .ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::ElasticIp))
                    .send()
                    .await
                    .context("AllocateAddress")?;
                Ok(made(out.allocation_id().context("AllocateAddress: no id")?))
            }
            Props::NatGateway { subnet, eip } => {
                let out = self
                    .ec2
                    .create_nat_gateway()
                    .subnet_id(Cloud::id_of(resolved, subnet)?)
                    .allocation_id(Cloud::id_of(resolved, eip)?)
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::Natgateway))
                    .send()
                    .await
                    .context("CreateNatGateway")?;
                let id = out
                    .nat_gateway()
                    .and_then(|n| n.nat_gateway_id())
                    .context("no id")?
                    .to_owned();
                self.wait_nat_available(&id).await?;
                Ok(made(&id))
            }
            Props::RouteTable { vpc, .. } => {
                let out = self
                    .ec2
                    .create_route_table()
                    .vpc_id(Cloud::id_of(resolved, vpc)?)
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::RouteTable))
                    .send()
                    .await
                    .context("CreateRouteTable")?;
                let id = out
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .context("no id")?
                    .to_owned();
                let o = made(&id);
                self.fix_route_table(d, &o, resolved, true).await?;
                Ok(o)
            }
            Props::SecurityGroup {
                vpc,
                description,
                ingress,
            } => {
                let out = self
                    .ec2
                    .create_security_group()
                    .group_name(&d.name)
                    .description(description)
                    .vpc_id(Cloud::id_of(resolved, vpc)?)
                    .tag_specifications(Cloud::ec2_tag_spec(spec, d, ResourceType::SecurityGroup))
                    .send()
                    .await
                    .context("CreateSecurityGroup")?;
                let id = out.group_id().context("no id")?.to_owned();
                if !ingress.is_empty() {
                    self.ec2
                        .authorize_security_group_ingress()
                        .group_id(&id)
                        .set_ip_permissions(Some(
                            ingress
                                .iter()
                                .map(|r| permission(r, resolved))
                                .collect::<Result<_>>()?,
                        ))
                        .send()
                        .await
                        .context("AuthorizeSecurityGroupIngress")?;
                }
                Ok(made(&id))
            }
            Props::Cluster { container_insights } => {
                let out = self
                    .ecs
                    .create_cluster()
                    .cluster_name(&d.name)
                    .capacity_providers("FARGATE")
                    .capacity_providers("FARGATE_SPOT")
                    .settings(insights(*container_insights))
                    .set_tags(Some(
                        kv_tags
                            .iter()
                            .map(|(k, v)| {
                                aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .context("CreateCluster")?;
                Ok(made(
                    out.cluster()
                        .and_then(|c| c.cluster_arn())
                        .unwrap_or(&d.name),
                ))
            }
            Props::Repository {
                immutable_tags,
                keep_images,
            } => {
                let out = self
                    .ecr
                    .create_repository()
                    .repository_name(&d.name)
                    .image_tag_mutability(mutability(*immutable_tags))
                    .image_scanning_configuration(
                        aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                            .scan_on_push(true)
                            .build(),
                    )
                    .set_tags(Some(
                        kv_tags
                            .iter()
                            .map(|(k, v)| {
                                aws_sdk_ecr::types::Tag::builder().key(k).value(v).build()
                            })
                            .collect::<Result<_, _>>()?,
                    ))
                    .send()
                    .await
                    .context("CreateRepository")?;
                let r = out.repository().context("no repository")?;
                self.ecr
                    .put_lifecycle_policy()
                    .repository_name(&d.name)
                    .lifecycle_policy_text(lifecycle(*keep_images))
                    .send()
                    .await
                    .context("PutLifecyclePolicy")?;
                let mut o = made(r.repository_arn().unwrap_or_default());
                o.attrs.insert(
                    "uri".into(),
                    r.repository_uri().unwrap_or_default().to_owned(),
                );
                Ok(o)
            }
            Props::LogGroup { retention_days } => {
                self.logs
                    .create_log_group()
                    .log_group_name(&d.name)
                    .set_tags(Some(kv_tags.into_iter().collect()))
                    .send()
                    .await
                    .context("CreateLogGroup")?;
                self.logs
                    .put_retention_policy()
                    .log_group_name(&d.name)
                    .retention_in_days(*retention_days as i32)
                    .send()
                    .await
                    .context("PutRetentionPolicy")?;
                Ok(made(&d.name))
            }
            Props::Topic => {
                let out = self
                    .sns
                    .create_topic()
                    .name(&d.name)
                    .set_tags(Some(
                        kv_tags
                            .iter()
                            .map(|(k, v)| {
                                aws_sdk_sns::types::Tag::builder().key(k).value(v).build()
                            })
                            .collect::<Result<_, _>>()?,
                    ))
                    .send()
                    .await
                    .context("CreateTopic")?;
                Ok(made(out.topic_arn().context("no topic ARN")?))
            }
            Props::Bucket => {
                let mut req = self.s3.create_bucket().bucket(&d.name);
                if self.region != "us-east-1" && !self.region.is_empty() {
                    req = req.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                                self.region.as_str(),
                            ))
                            .build(),
                    );
                }
                req.send().await.context("CreateBucket")?;
                self.s3
                    .put_bucket_tagging()
                    .bucket(&d.name)
                    .tagging(
                        aws_sdk_s3::types::Tagging::builder()
                            .set_tag_set(Some(
                                kv_tags
                                    .iter()
                                    .map(|(k, v)| {
                                        aws_sdk_s3::types::Tag::builder().key(k).value(v).build()
                                    })
                                    .collect::<Result<_, _>>()?,
                            ))
                            .build()?,
                    )
                    .send()
                    .await
                    .context("PutBucketTagging")?;
                let o = made(&d.name);
                let all = vec![
                    "versioning".to_owned(),
                    "default encryption".to_owned(),
                    "block public access".to_owned(),
                ];
                self.fix_bucket(&d.name, &all).await?;
                Ok(o)
            }
            _ => unreachable!("the application tier is handled in cloud_app"),
        }
    }

    pub async fn update(
        &self,
        d: &Desired,
        o: &Observed,
        resolved: &Resolved,
        changes: &[String],
    ) -> Result<()> {
        if d.kind.is_app_tier() {
            return self.update_app(d, o, resolved, changes).await;
        }
        match &d.props {
            Props::InternetGateway { vpc } => {
                self.ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(&o.id)
                    .vpc_id(Cloud::id_of(resolved, vpc)?)
                    .send()
                    .await
                    .context("AttachInternetGateway")?;
            }
            Props::RouteTable { .. } => self.fix_route_table(d, o, resolved, false).await?,
            Props::SecurityGroup { ingress, .. } => {
                let g = self
                    .ec2
                    .describe_security_groups()
                    .group_ids(&o.id)
                    .send()
                    .await
                    .context("DescribeSecurityGroups")?;
                let have = g
                    .security_groups()
                    .first()
                    .map(|g| rules_of(g.ip_permissions()))
                    .unwrap_or_default();
                let wanted: Vec<_> = ingress.iter().map(|r| rule_key(r, resolved)).collect();
                let missing: Vec<IpPermission> = ingress
                    .iter()
                    .filter(|r| !have.contains(&rule_key(r, resolved)))
                    .map(|r| permission(r, resolved))
                    .collect::<Result<_>>()?;
                if !missing.is_empty() {
                    self.ec2
                        .authorize_security_group_ingress()
                        .group_id(&o.id)
                        .set_ip_permissions(Some(missing))
                        .send()
                        .await
                        .context("AuthorizeSecurityGroupIngress")?;
                }
                let extra: Vec<IpPermission> = have
                    .iter()
                    .filter(|h| !wanted.contains(h))
                    .map(|(port, src)| raw_permission(*port, src))
                    .collect();
                if !extra.is_empty() {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(&o.id)
                        .set_ip_permissions(Some(extra))
                        .send()
                        .await
                        .context("RevokeSecurityGroupIngress")?;
                }
            }
            Props::Cluster { container_insights } => {
                if changes.iter().any(|c| c.starts_with("Container Insights")) {
                    self.ecs
                        .update_cluster_settings()
                        .cluster(&d.name)
                        .settings(insights(*container_insights))
                        .send()
                        .await
                        .context("UpdateClusterSettings")?;
                }
                if changes.iter().any(|c| c.starts_with("capacity provider")) {
                    self.ecs
                        .put_cluster_capacity_providers()
                        .cluster(&d.name)
                        .capacity_providers("FARGATE")
                        .capacity_providers("FARGATE_SPOT")
                        .set_default_capacity_provider_strategy(Some(Vec::new()))
                        .send()
                        .await
                        .context("PutClusterCapacityProviders")?;
                }
            }
            Props::Repository {
                immutable_tags,
                keep_images,
            } => {
                for c in changes {
                    if c.starts_with("tag mutability") {
                        self.ecr
                            .put_image_tag_mutability()
                            .repository_name(&d.name)
                            .image_tag_mutability(mutability(*immutable_tags))
                            .send()
                            .await
                            .context("PutImageTagMutability")?;
                    } else if c == "scan on push" {
                        self.ecr
                            .put_image_scanning_configuration()
                            .repository_name(&d.name)
                            .image_scanning_configuration(
                                aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                                    .scan_on_push(true)
                                    .build(),
                            )
                            .send()
                            .await
                            .context("PutImageScanningConfiguration")?;
                    } else if c.starts_with("lifecycle") {
                        self.ecr
                            .put_lifecycle_policy()
                            .repository_name(&d.name)
                            .lifecycle_policy_text(lifecycle(*keep_images))
                            .send()
                            .await
                            .context("PutLifecyclePolicy")?;
                    }
                }
            }
            Props::LogGroup { retention_days } => {
                self.logs
                    .put_retention_policy()
                    .log_group_name(&d.name)
                    .retention_in_days(*retention_days as i32)
                    .send()
                    .await
                    .context("PutRetentionPolicy")?;
            }
            Props::Bucket => self.fix_bucket(&d.name, changes).await?,
            other => bail!("{} cannot be changed in place ({other:?})", d.key),
        }
        Ok(())
    }

    /// `final_snapshot`: for the database, take one before deleting it.
    pub async fn delete(
        &self,
        spec: &Spec,
        d: &Desired,
        o: &Observed,
        final_snapshot: bool,
    ) -> Result<()> {
        if d.kind.is_app_tier() {
            return self.delete_app(spec, d, o, final_snapshot).await;
        }
        match &d.props {
            Props::Vpc { .. } => {
                self.ec2
                    .delete_vpc()
                    .vpc_id(&o.id)
                    .send()
                    .await
                    .context("DeleteVpc")?;
            }
            Props::Subnet { .. } => {
                self.ec2
                    .delete_subnet()
                    .subnet_id(&o.id)
                    .send()
                    .await
                    .context("DeleteSubnet")?;
            }
            Props::InternetGateway { .. } => {
                let g = self
                    .ec2
                    .describe_internet_gateways()
                    .internet_gateway_ids(&o.id)
                    .send()
                    .await
                    .context("DescribeInternetGateways")?;
                for a in g.internet_gateways().iter().flat_map(|g| g.attachments()) {
                    if let Some(vpc) = a.vpc_id() {
                        self.ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(&o.id)
                            .vpc_id(vpc)
                            .send()
                            .await
                            .context("DetachInternetGateway")?;
                    }
                }
                self.ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(&o.id)
                    .send()
                    .await
                    .context("DeleteInternetGateway")?;
            }
            Props::ElasticIp => {
                self.ec2
                    .release_address()
                    .allocation_id(&o.id)
                    .send()
                    .await
                    .context("ReleaseAddress")?;
            }
            Props::NatGateway { .. } => {
                self.ec2
                    .delete_nat_gateway()
                    .nat_gateway_id(&o.id)
                    .send()
                    .await
                    .context("DeleteNatGateway")?;
                self.wait_nat_deleted(&o.id).await?;
            }
            Props::RouteTable { .. } => {
                let t = self
                    .ec2
                    .describe_route_tables()
                    .route_table_ids(&o.id)
                    .send()
                    .await
                    .context("DescribeRouteTables")?;
                for a in t.route_tables().iter().flat_map(|t| t.associations()) {
                    if a.main() != Some(true) {
                        if let Some(id) = a.route_table_association_id() {
                            self.ec2
                                .disassociate_route_table()
                                .association_id(id)
                                .send()
                                .await
                                .context("DisassociateRouteTable")?;
                        }
                    }
                }
                self.ec2
                    .delete_route_table()
                    .route_table_id(&o.id)
                    .send()
                    .await
                    .context("DeleteRouteTable")?;
            }
            Props::SecurityGroup { .. } => {
                self.ec2
                    .delete_security_group()
                    .group_id(&o.id)
                    .send()
                    .await
                    .context("DeleteSecurityGroup")?;
            }
            Props::Cluster { .. } => {
                self.ecs
                    .delete_cluster()
                    .cluster(&d.name)
                    .send()
                    .await
                    .context("DeleteCluster")?;
            }
            Props::Repository { .. } => {
                // `destroy` asked for everything to go, images included (it needs --yes).
                self.ecr
                    .delete_repository()
                    .repository_name(&d.name)
                    .force(true)
                    .send()
                    .await
                    .context("DeleteRepository")?;
            }
            Props::LogGroup { .. } => {
                self.logs
                    .delete_log_group()
                    .log_group_name(&d.name)
                    .send()
                    .await
                    .context("DeleteLogGroup")?;
            }
            Props::Topic => {
                self.sns
                    .delete_topic()
                    .topic_arn(&o.id)
                    .send()
                    .await
                    .context("DeleteTopic")?;
            }
            Props::Bucket => {
                self.empty_bucket(&d.name).await?;
                self.s3
                    .delete_bucket()
                    .bucket(&d.name)
                    .send()
                    .await
                    .context("DeleteBucket")?;
            }
            _ => unreachable!("the application tier is handled in cloud_app"),
        }
        Ok(())
    }

    async fn fix_route_table(
        &self,
        d: &Desired,
        o: &Observed,
        resolved: &Resolved,
        fresh: bool,
    ) -> Result<()> {
        let Props::RouteTable {
            subnets,
            default_route,
            ..
        } = &d.props
        else {
            return Ok(());
        };
        let current = if fresh {
            None
        } else {
            let t = self
                .ec2
                .describe_route_tables()
                .route_table_ids(&o.id)
                .send()
                .await
                .context("DescribeRouteTables")?;
            t.route_tables().first().cloned()
        };
        if let Some(target) = default_route {
            let target_id = Cloud::id_of(resolved, target)?;
            let existing = current.as_ref().and_then(|t| {
                t.routes()
                    .iter()
                    .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
                    .cloned()
            });
            let ok = existing.as_ref().is_some_and(|r| {
                r.gateway_id() == Some(target_id) || r.nat_gateway_id() == Some(target_id)
            });
            if !ok {
                if existing.is_some() {
                    self.ec2
                        .delete_route()
                        .route_table_id(&o.id)
                        .destination_cidr_block("0.0.0.0/0")
                        .send()
                        .await
                        .context("DeleteRoute")?;
                }
                let mut req = self
                    .ec2
                    .create_route()
                    .route_table_id(&o.id)
                    .destination_cidr_block("0.0.0.0/0");
                req = if target_id.starts_with("nat-") {
                    req.nat_gateway_id(target_id)
                } else {
                    req.gateway_id(target_id)
                };
                req.send().await.context("CreateRoute")?;
            }
        }
        for s in subnets {
            let subnet_id = Cloud::id_of(resolved, s)?;
            let associated = current.as_ref().is_some_and(|t| {
                t.associations()
                    .iter()
                    .any(|a| a.subnet_id() == Some(subnet_id))
            });
            if !associated {
                self.ec2
                    .associate_route_table()
                    .route_table_id(&o.id)
                    .subnet_id(subnet_id)
                    .send()
                    .await
                    .context("AssociateRouteTable")?;
            }
        }
        Ok(())
    }

    async fn fix_bucket(&self, bucket: &str, changes: &[String]) -> Result<()> {
        for c in changes {
            match c.as_str() {
                "versioning" => {
                    self.s3
                        .put_bucket_versioning()
                        .bucket(bucket)
                        .versioning_configuration(
                            aws_sdk_s3::types::VersioningConfiguration::builder()
                                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                                .build(),
                        )
                        .send()
                        .await
                        .context("PutBucketVersioning")?;
                }
                "default encryption" => {
                    let rule = aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                                .build()?,
                        )
                        .build();
                    self.s3
                        .put_bucket_encryption()
                        .bucket(bucket)
                        .server_side_encryption_configuration(
                            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                                .rules(rule)
                                .build()?,
                        )
                        .send()
                        .await
                        .context("PutBucketEncryption")?;
                }
                "block public access" => {
                    self.s3
                        .put_public_access_block()
                        .bucket(bucket)
                        .public_access_block_configuration(
                            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                                .block_public_acls(true)
                                .ignore_public_acls(true)
                                .block_public_policy(true)
                                .restrict_public_buckets(true)
                                .build(),
                        )
                        .send()
                        .await
                        .context("PutPublicAccessBlock")?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn empty_bucket(&self, bucket: &str) -> Result<()> {
        loop {
            let out = self
                .s3
                .list_object_versions()
                .bucket(bucket)
                .send()
                .await
                .context("ListObjectVersions")?;
            let mut ids = Vec::new();
            for v in out.versions() {
                ids.push(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key(v.key().unwrap_or_default())
                        .set_version_id(v.version_id().map(str::to_owned))
                        .build()?,
                );
            }
            for m in out.delete_markers() {
                ids.push(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key(m.key().unwrap_or_default())
                        .set_version_id(m.version_id().map(str::to_owned))
                        .build()?,
                );
            }
            if ids.is_empty() {
                return Ok(());
            }
            for id in ids {
                let mut req = self.s3.delete_object().bucket(bucket).key(id.key());
                if let Some(v) = id.version_id() {
                    req = req.version_id(v);
                }
                req.send().await.context("DeleteObject")?;
            }
        }
    }

    async fn wait_nat_available(&self, id: &str) -> Result<()> {
        self.wait_nat(id, &["available"], "available").await
    }

    async fn wait_nat_deleted(&self, id: &str) -> Result<()> {
        self.wait_nat(id, &["deleted"], "deleted").await
    }

    /// NAT gateways take minutes in AWS; routes and releases wait for them.
    async fn wait_nat(&self, id: &str, done: &[&str], what: &str) -> Result<()> {
        for i in 0..120 {
            let out = self
                .ec2
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .context("DescribeNatGateways")?;
            let state = out
                .nat_gateways()
                .first()
                .and_then(|n| n.state())
                .map(|s| s.as_str().to_owned());
            match state.as_deref() {
                None => return Ok(()),
                Some(s) if done.contains(&s) => return Ok(()),
                Some("failed") => bail!("NAT gateway {id} failed"),
                Some(s) => {
                    if i % 6 == 0 {
                        eprintln!("  waiting for NAT gateway {id} to be {what} (now {s})…");
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
        bail!("NAT gateway {id} was not {what} after 10 minutes")
    }
}

fn insights(on: bool) -> aws_sdk_ecs::types::ClusterSetting {
    aws_sdk_ecs::types::ClusterSetting::builder()
        .name(aws_sdk_ecs::types::ClusterSettingName::ContainerInsights)
        .value(if on { "enabled" } else { "disabled" })
        .build()
}

fn mutability(immutable: bool) -> aws_sdk_ecr::types::ImageTagMutability {
    if immutable {
        aws_sdk_ecr::types::ImageTagMutability::Immutable
    } else {
        aws_sdk_ecr::types::ImageTagMutability::Mutable
    }
}

fn lifecycle(keep: u32) -> String {
    serde_json::json!({"rules": [{
        "rulePriority": 1,
        "description": format!("keep the last {keep} images"),
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
        "action": {"type": "expire"}
    }]})
    .to_string()
}

/// (port, source) of each single-port TCP ingress rule.
fn rules_of(perms: &[IpPermission]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for p in perms {
        if p.ip_protocol() != Some("tcp") || p.from_port() != p.to_port() {
            continue;
        }
        let port = p.from_port().unwrap_or(0) as u16;
        out.extend(
            p.ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip())
                .map(|c| (port, c.to_owned())),
        );
        out.extend(
            p.user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id())
                .map(|g| (port, g.to_owned())),
        );
    }
    out
}

fn rule_key(r: &Ingress, resolved: &Resolved) -> (u16, String) {
    let src = match &r.from {
        Source::Cidr(c) => c.clone(),
        Source::Group(k) => resolved.get(k).map(|o| o.id.clone()).unwrap_or_default(),
    };
    (r.port, src)
}

fn describe_rule(r: &Ingress) -> String {
    match &r.from {
        Source::Cidr(c) => format!("tcp {} from {c}", r.port),
        Source::Group(k) => format!("tcp {} from {k}", r.port),
    }
}

fn permission(r: &Ingress, resolved: &Resolved) -> Result<IpPermission> {
    let (port, src) = rule_key(r, resolved);
    if src.is_empty() {
        bail!("the source of {} is not there yet", describe_rule(r));
    }
    Ok(raw_permission(port, &src))
}

fn raw_permission(port: u16, src: &str) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port.into())
        .to_port(port.into());
    if src.starts_with("sg-") {
        b.user_id_group_pairs(UserIdGroupPair::builder().group_id(src).build())
            .build()
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip(src).build()).build()
    }
}
