//! Recognising values that must not be in plaintext, and keeping secrets out of output.

use std::fmt;

/// Why a plaintext environment value looks like a secret, or `None`. The reason never quotes the
/// value.
pub fn looks_like_secret(name: &str, value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    const NAMES: [&str; 9] = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "ACCESS_KEY",
    ];
    // Names that merely mention a secret's location are fine (`SECRET_ARN`, `TOKEN_URL`...).
    let is_pointer = ["_ARN", "_URL_PATH", "_PARAMETER", "_NAME", "_FILE", "_ID"]
        .iter()
        .any(|s| upper.ends_with(s));
    if !is_pointer && NAMES.iter().any(|n| upper.contains(n)) {
        return Some("its name says it holds a secret");
    }
    if value.contains("-----BEGIN") && value.contains("PRIVATE KEY") {
        return Some("the value is a private key");
    }
    if value.len() == 20
        && (value.starts_with("AKIA") || value.starts_with("ASIA"))
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Some("the value is an AWS access key id");
    }
    if let Some((scheme, rest)) = value.split_once("://") {
        // user:password@host in a connection URL
        if !scheme.is_empty() {
            if let Some(userinfo) = rest
                .split(['/', '?', '#'])
                .next()
                .and_then(|a| a.rsplit_once('@'))
            {
                if userinfo.0.contains(':') {
                    return Some("the value is a URL with a password in it");
                }
            }
        }
    }
    for prefix in [
        "sk_live_",
        "ghp_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "glpat-",
    ] {
        if value.starts_with(prefix) {
            return Some("the value has the form of an API token");
        }
    }
    None
}

/// A value that prints as `<redacted>` under both `Debug` and `Display`, so that a secret carried
/// through the program cannot reach a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn new(v: T) -> Self {
        Redacted(v)
    }
    /// The only way to the value; grep for it when auditing.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

/// Secrets arrive in events (CodePipeline's artifact credentials): read straight into the
/// wrapper, so no plain copy ever exists to be printed.
impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Redacted<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Redacted)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_shaped_values_are_recognised() {
        let cases = [
            ("DB_PASSWORD", "x", true),
            ("STRIPE_SECRET_KEY", "x", true),
            ("GITHUB_TOKEN", "x", true),
            ("DATABASE_URL", "postgres://app:pw@db:5432/app", true),
            ("DATABASE_URL", "postgres://db:5432/app", false),
            ("ANY", "AKIAIOSFODNN7EXAMPLE", true),
            ("ANY", "-----BEGIN RSA PRIVATE KEY-----", true),
            ("PAYMENT", "sk_live_abc", true),
            ("SECRET_ARN", "arn:aws:secretsmanager:…", false),
            ("DB_PASSWORD", "", false),
            ("DJANGO_SETTINGS_MODULE", "booking.settings", false),
            ("HOMEPAGE", "https://example.com/a@b", false),
        ];
        for (k, v, want) in cases {
            assert_eq!(looks_like_secret(k, v).is_some(), want, "{k}={v}");
        }
    }

    #[test]
    fn redacted_never_prints_its_value() {
        let r = Redacted::new("hunter2".to_string());
        assert_eq!(format!("{r:?} {r}"), "<redacted> <redacted>");
        assert_eq!(r.expose(), "hunter2");
    }
}
