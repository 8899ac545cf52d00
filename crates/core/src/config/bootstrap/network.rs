//! `[environments.<env>.bootstrap]`'s network: the VPC, its two zones, two public and two
//! private subnets (carved out of the VPC unless given), and how the private ones reach out.

use super::{Cidr, Nat, RawBootstrap};
use crate::config::diagnostics::Collector;

pub(super) struct Network {
    pub vpc_cidr: Cidr,
    pub zones: Option<[String; 2]>,
    pub public_subnets: [Cidr; 2],
    pub private_subnets: [Cidr; 2],
    pub nat: Nat,
}

impl Network {
    /// `None` when the VPC or a subnet is not a network (reported); every other problem is
    /// reported too, and the network still built so the rest of the table is checked.
    pub(super) fn from_raw(c: &mut Collector<'_>, base: &str, raw: &RawBootstrap) -> Option<Self> {
        let vpc_field = format!("{base}.vpc_cidr");
        let vpc = cidr(
            c,
            &vpc_field,
            raw.vpc_cidr.as_deref().unwrap_or("10.20.0.0/16"),
        );
        let public = subnets(
            c,
            base,
            "public_subnets",
            raw.public_subnets.as_deref(),
            vpc,
            0,
        );
        let private = subnets(
            c,
            base,
            "private_subnets",
            raw.private_subnets.as_deref(),
            vpc,
            8,
        );
        if let (Some(v), Some(p), Some(q)) = (vpc, public, private) {
            check_layout(c, base, v, p, q);
        }
        let zones = zones(c, base, raw.availability_zones.as_deref());
        let nat = nat(c, base, raw.nat.as_deref());
        Some(Network {
            vpc_cidr: vpc?,
            zones,
            public_subnets: public?,
            private_subnets: private?,
            nat,
        })
    }
}

fn cidr(c: &mut Collector<'_>, field: &str, s: &str) -> Option<Cidr> {
    let parsed = Cidr::parse(s);
    if parsed.is_none() {
        c.err(
            field,
            format!("`{s}` is not an IPv4 network in CIDR form (e.g. 10.20.0.0/16)"),
        );
    }
    parsed
}

/// Two subnets as given, or /20s at the start of the VPC: public 0 and 1, private 8 and 9.
fn subnets(
    c: &mut Collector<'_>,
    base: &str,
    key: &str,
    given: Option<&[String]>,
    vpc: Option<Cidr>,
    default_index: u32,
) -> Option<[Cidr; 2]> {
    let field = format!("{base}.{key}");
    match given {
        Some(list) if list.len() != 2 => {
            c.err(field, "give exactly two, one per zone");
            None
        }
        Some(list) => {
            let a = cidr(c, &field, &list[0]);
            let b = cidr(c, &field, &list[1]);
            Some([a?, b?])
        }
        None => vpc.map(|v| {
            let prefix = v.prefix.max(16) + 4;
            [
                v.subnet(prefix, default_index),
                v.subnet(prefix, default_index + 1),
            ]
        }),
    }
}

/// The four subnets inside the VPC, each /28 or larger, none overlapping another.
fn check_layout(
    c: &mut Collector<'_>,
    base: &str,
    vpc: Cidr,
    public: [Cidr; 2],
    private: [Cidr; 2],
) {
    if !(16..=24).contains(&vpc.prefix) {
        c.err(
            format!("{base}.vpc_cidr"),
            "a VPC is /16 to /24 here (AWS allows /16 to /28; subnets need room)",
        );
    }
    let all = [
        ("public_subnets", public[0]),
        ("public_subnets", public[1]),
        ("private_subnets", private[0]),
        ("private_subnets", private[1]),
    ];
    for (i, (key, s)) in all.iter().enumerate() {
        let field = format!("{base}.{key}");
        if !vpc.contains(*s) {
            c.err(&field, format!("{s} is outside the VPC {vpc}"));
        }
        if s.prefix > 28 {
            c.err(&field, format!("{s}: a subnet is /28 or larger"));
        }
        for (other_key, o) in &all[i + 1..] {
            if s.overlaps(*o) {
                c.err(&field, format!("{s} overlaps {o} in `{other_key}`"));
            }
        }
    }
}

fn zones(c: &mut Collector<'_>, base: &str, given: Option<&[String]>) -> Option<[String; 2]> {
    match given? {
        [a, b] if a != b => Some([a.clone(), b.clone()]),
        _ => {
            c.err(
                format!("{base}.availability_zones"),
                "give exactly two different zones",
            );
            None
        }
    }
}

fn nat(c: &mut Collector<'_>, base: &str, given: Option<&str>) -> Nat {
    match given.unwrap_or("single") {
        "none" => Nat::None,
        "single" => Nat::Single,
        "per_az" => Nat::PerAz,
        other => {
            c.err(
                format!("{base}.nat"),
                format!("`{other}` is not allowed; allowed: \"none\", \"single\", \"per_az\""),
            );
            Nat::Single
        }
    }
}
