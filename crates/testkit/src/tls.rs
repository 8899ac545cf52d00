//! A throwaway certificate authority and a server certificate for 127.0.0.1, written as PEM
//! files in a fresh temporary folder: what a TLS test server needs, and the CA its client trusts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub struct TestCa {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    /// Writes `ca.pem`, `server.pem` and `server.key` under a new folder named for `what`.
    pub fn write(what: &str) -> Result<TestCa> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("harbormaster test CA ({what})"));
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let server = params.signed_by(&key, &ca, &ca_key)?;

        let dir = std::env::temp_dir().join(format!(
            "harbormaster-tls-{what}-{}-{}",
            std::process::id(),
            crate::free_port()?
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let out = TestCa {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            dir,
        };
        std::fs::write(&out.ca_cert, ca.pem())?;
        std::fs::write(&out.server_cert, server.pem())?;
        std::fs::write(&out.server_key, key.serialize_pem())?;
        Ok(out)
    }
}
