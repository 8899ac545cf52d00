//! The environment's network: a VPC over two zones, public subnets behind an internet
//! gateway, private subnets with a way out as `nat` says (none, one NAT gateway, one per zone).

use serde_json::{json, Value};

use super::{att, r, tags, Template};
use crate::spec::{Nat, Spec};

const ZONES: [&str; 2] = ["A", "B"];

/// The `i`th zone: the config's, or the region's `i`th.
fn zone(spec: &Spec, i: usize) -> Value {
    match &spec.zones {
        Some(zones) => json!(zones[i]),
        None => json!({"Fn::Select": [i, {"Fn::GetAZs": ""}]}),
    }
}

pub(super) fn network(t: &mut Template, spec: &Spec, outputs: &mut Vec<(String, Value)>) {
    let p = format!("{}-{}", spec.project, spec.environment);
    t.add(
        "Vpc",
        "AWS::EC2::VPC",
        json!({
            "CidrBlock": spec.vpc_cidr.to_string(),
            "EnableDnsSupport": true,
            "EnableDnsHostnames": true,
            "Tags": tags(spec, &p),
        }),
    );
    t.add("InternetGateway", "AWS::EC2::InternetGateway", json!({"Tags": tags(spec, &p)}));
    t.add(
        "GatewayAttachment",
        "AWS::EC2::VPCGatewayAttachment",
        json!({"VpcId": r("Vpc"), "InternetGatewayId": r("InternetGateway")}),
    );
    t.add(
        "PublicRoutes",
        "AWS::EC2::RouteTable",
        json!({"VpcId": r("Vpc"), "Tags": tags(spec, &format!("{p}-public"))}),
    );
    t.add(
        "PublicDefaultRoute",
        "AWS::EC2::Route",
        json!({"RouteTableId": r("PublicRoutes"), "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": r("InternetGateway")}),
    )
    .insert("DependsOn".into(), json!("GatewayAttachment"));
    for (i, z) in ZONES.iter().enumerate() {
        for (kind, cidr, public) in
            [("Public", spec.public_subnets[i], true), ("Private", spec.private_subnets[i], false)]
        {
            let id = format!("{kind}Subnet{z}");
            t.add(
                &id,
                "AWS::EC2::Subnet",
                json!({
                    "VpcId": r("Vpc"),
                    "CidrBlock": cidr.to_string(),
                    "AvailabilityZone": zone(spec, i),
                    "MapPublicIpOnLaunch": public,
                    "Tags": tags(spec, &format!("{p}-{}-{}", kind.to_lowercase(), z.to_lowercase())),
                }),
            );
        }
        t.add(
            &format!("PublicSubnet{z}Routes"),
            "AWS::EC2::SubnetRouteTableAssociation",
            json!({"SubnetId": r(&format!("PublicSubnet{z}")), "RouteTableId": r("PublicRoutes")}),
        );
    }
    private_routes(t, spec, &p);
    outputs.push(("vpc-id".into(), r("Vpc")));
    outputs.push((
        "public-subnet-ids".into(),
        json!({"Fn::Join": [",", [r("PublicSubnetA"), r("PublicSubnetB")]]}),
    ));
    outputs.push((
        "private-subnet-ids".into(),
        json!({"Fn::Join": [",", [r("PrivateSubnetA"), r("PrivateSubnetB")]]}),
    ));
}

/// One route table per private subnet; its default route through the zone's NAT gateway
/// (`per_az`), the first zone's (`single`), or none.
fn private_routes(t: &mut Template, spec: &Spec, p: &str) {
    let gateways: &[&str] = match spec.nat {
        Nat::None => &[],
        Nat::Single => &["A"],
        Nat::PerAz => &ZONES,
    };
    for z in gateways {
        t.add(
            &format!("NatAddress{z}"),
            "AWS::EC2::EIP",
            json!({"Domain": "vpc", "Tags": tags(spec, &format!("{p}-nat-{}", z.to_lowercase()))}),
        )
        .insert("DependsOn".into(), json!("GatewayAttachment"));
        t.add(
            &format!("NatGateway{z}"),
            "AWS::EC2::NatGateway",
            json!({
                "AllocationId": att(&format!("NatAddress{z}"), "AllocationId"),
                "SubnetId": r(&format!("PublicSubnet{z}")),
                "Tags": tags(spec, &format!("{p}-nat-{}", z.to_lowercase())),
            }),
        );
    }
    for z in ZONES {
        let table = format!("PrivateRoutes{z}");
        t.add(
            &table,
            "AWS::EC2::RouteTable",
            json!({"VpcId": r("Vpc"), "Tags": tags(spec, &format!("{p}-private-{}", z.to_lowercase()))}),
        );
        t.add(
            &format!("PrivateSubnet{z}Routes"),
            "AWS::EC2::SubnetRouteTableAssociation",
            json!({"SubnetId": r(&format!("PrivateSubnet{z}")), "RouteTableId": r(&table)}),
        );
        let via = match spec.nat {
            Nat::None => continue,
            Nat::Single => "NatGatewayA".to_owned(),
            Nat::PerAz => format!("NatGateway{z}"),
        };
        t.add(
            &format!("PrivateDefaultRoute{z}"),
            "AWS::EC2::Route",
            json!({"RouteTableId": r(&table), "DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": r(&via)}),
        );
    }
}
