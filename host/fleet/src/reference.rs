//! Artifact references (`[registry/]repository[:tag][@digest]`, as `docker pull` takes them)
//! and which registries may be spoken to over plain HTTP: loopback ones (a registry on the
//! device or a test's), or any when the caller says `--insecure`. Everything else is HTTPS.

use super::FleetError;
use oci_spec::distribution::Reference;
use std::net::IpAddr;

/// A parsed reference and whether its registry is reached over plain HTTP.
#[derive(Debug, Clone)]
pub struct ArtifactRef {
    /// The reference (oci-spec's type; a missing tag reads as `latest`).
    pub reference: Reference,
    /// Plain HTTP: the registry is on a loopback address, or the caller allowed it.
    pub plain_http: bool,
}

impl ArtifactRef {
    /// Parses `text`; `insecure` allows plain HTTP to a registry that is not on loopback.
    pub fn parse(text: &str, insecure: bool) -> Result<ArtifactRef, FleetError> {
        let reference: Reference =
            text.parse()
                .map_err(
                    |e: oci_spec::distribution::ParseError| FleetError::Reference {
                        reference: text.to_string(),
                        reason: e.to_string(),
                    },
                )?;
        let plain_http = insecure || is_loopback(reference.registry());
        Ok(ArtifactRef {
            reference,
            plain_http,
        })
    }

    /// The reference as text, registry, repository, tag and digest spelled out.
    pub fn whole(&self) -> String {
        self.reference.whole()
    }
}

/// Whether `registry` (`host[:port]`, an IPv6 host in brackets) names this machine:
/// `localhost` or a loopback address.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_others() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn references_parse_with_their_transport() {
        let r = ArtifactRef::parse("127.0.0.1:5000/skills/intents:2", false).unwrap();
        assert!(r.plain_http);
        assert_eq!(r.reference.repository(), "skills/intents");
        assert_eq!(r.reference.tag(), Some("2"));
        let r = ArtifactRef::parse("ghcr.io/acme/intents:2", false).unwrap();
        assert!(!r.plain_http);
        assert!(
            ArtifactRef::parse("ghcr.io/acme/intents:2", true)
                .unwrap()
                .plain_http
        );
        assert!(matches!(
            ArtifactRef::parse("UPPER/Case::", false),
            Err(FleetError::Reference { .. })
        ));
    }
}
