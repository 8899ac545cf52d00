//! IPv4 CIDR blocks: parsed strictly, compared, and carved into subnets (the bootstrap's
//! network settings).

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
        let addr = u32::from(addr);
        // The address must be the network's first (10.0.1.0/16 is a typo for something).
        (addr & !Cidr::mask(prefix) == 0).then_some(Cidr { addr, prefix })
    }
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }
    fn last(self) -> u32 {
        self.addr | !Cidr::mask(self.prefix)
    }
    pub fn contains(self, other: Cidr) -> bool {
        other.prefix >= self.prefix && other.addr & Cidr::mask(self.prefix) == self.addr
    }
    pub fn overlaps(self, other: Cidr) -> bool {
        self.addr <= other.last() && other.addr <= self.last()
    }
    /// The n-th block of `prefix` bits inside this one.
    pub fn subnet(self, prefix: u8, n: u32) -> Cidr {
        Cidr {
            addr: self.addr + (n << (32 - prefix)),
            prefix,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_arithmetic() {
        let v = Cidr::parse("10.0.0.0/16").unwrap();
        assert!(v.contains(Cidr::parse("10.0.255.0/24").unwrap()));
        assert!(!v.contains(Cidr::parse("10.1.0.0/24").unwrap()));
        assert!(Cidr::parse("10.0.0.0/23")
            .unwrap()
            .overlaps(Cidr::parse("10.0.1.0/24").unwrap()));
        assert!(!Cidr::parse("10.0.0.0/24")
            .unwrap()
            .overlaps(Cidr::parse("10.0.1.0/24").unwrap()));
        assert_eq!(v.subnet(20, 9).to_string(), "10.0.144.0/20");
    }
}
