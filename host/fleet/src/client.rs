//! A connection to one artifact's registry: the `oci-client` client on a current-thread tokio
//! runtime this value owns (created here, dropped with it; never the runtime library's), with
//! the credentials the standard Docker config file holds for the registry.

use super::artifact;
use super::reference::ArtifactRef;
use super::sha256_hex;
use super::FleetError;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciImageManifest, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use std::path::PathBuf;
use std::time::Duration;

/// Longest wait for a connection to the registry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest manifest accepted: the most the OCI distribution spec asks registries to accept.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Longest wait for the next bytes of a response: a registry that stalls mid-blob is treated
/// as a dropped connection (and resumed), never waited on for ever.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for one artifact's registry.
pub struct RegistryClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
    /// For manifests, whose length `client` does not bound: same transport settings.
    http: reqwest::Client,
    auth: RegistryAuth,
    target: ArtifactRef,
}

impl RegistryClient {
    /// A client for `target`'s registry, with the Docker config file's credentials for it
    /// (anonymous when it has none).
    pub fn new(target: ArtifactRef) -> Result<RegistryClient, FleetError> {
        // reqwest is built without a default crypto provider (no aws-lc); ring is the one the
        // tree already has. Installing it twice is harmless: the first one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = target.reference.resolve_registry().to_string();
        let protocol = if target.plain_http {
            ClientProtocol::HttpsExcept(vec![registry.clone(), target.reference.registry().into()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            // An index (several platforms) is no skill or model: refuse it rather than pick.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| FleetError::Registry {
            reference: target.whole(),
            source: Box::new(e),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| FleetError::Registry {
                reference: target.whole(),
                source: Box::new(e.into()),
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FleetError::Runtime)?;
        Ok(RegistryClient {
            runtime,
            client,
            http,
            auth: docker_credentials(target.reference.registry())?,
            target,
        })
    }

    /// The artifact this client is for.
    pub fn target(&self) -> &ArtifactRef {
        &self.target
    }

    /// Runs `f` on the client's runtime to completion.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The underlying client and the reference, for the push and pull modules.
    pub(crate) fn oci(&self) -> (&Client, &oci_spec::distribution::Reference) {
        (&self.client, &self.target.reference)
    }

    /// Maps a client error to [`FleetError::Registry`] for this artifact.
    pub(crate) fn registry_err(&self, e: OciDistributionError) -> FleetError {
        FleetError::Registry {
            reference: self.target.whole(),
            source: Box::new(e),
        }
    }

    /// Authenticates for `operation` (a token exchange where the registry asks for one).
    pub(crate) fn authenticate(&self, operation: RegistryOperation) -> Result<(), FleetError> {
        let (client, reference) = self.oci();
        self.block_on(client.auth(reference, &self.auth, operation))
            .map(drop)
            .map_err(|e| self.registry_err(e))
    }

    /// The artifact's image manifest and its digest (`sha256:<hex>` of the bytes received).
    /// Fetched here rather than by `oci-client`, which reads a manifest of any length: at most
    /// [`MAX_MANIFEST_BYTES`], refused past that as it streams in; when the reference names a
    /// digest, the bytes must hash to it.
    pub fn manifest(&self) -> Result<(OciImageManifest, String), FleetError> {
        self.block_on(self.fetch_manifest())
    }

    async fn fetch_manifest(&self) -> Result<(OciImageManifest, String), FleetError> {
        let (client, reference) = self.oci();
        let token = client
            .auth(reference, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.registry_err(e))?;
        let scheme = if self.target.plain_http {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{}",
            reference.resolve_registry(),
            reference.repository(),
            reference.digest().or(reference.tag()).unwrap_or("latest")
        );
        let mut request = self.http.get(&url).header(
            http::header::ACCEPT,
            format!("{OCI_IMAGE_MEDIA_TYPE}, {IMAGE_MANIFEST_MEDIA_TYPE}"),
        );
        request = match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let request_err = |e: reqwest::Error| self.registry_err(e.into());
        let mut response = request.send().await.map_err(request_err)?;
        let status = response.status();
        if !status.is_success() {
            let message = read_at_most(&mut response, 4096).await.ok().flatten();
            let message = String::from_utf8_lossy(&message.unwrap_or_default()).into_owned();
            return Err(self.registry_err(OciDistributionError::ServerError {
                code: status.as_u16(),
                url,
                message,
            }));
        }
        let too_large = || FleetError::ManifestTooLarge {
            reference: self.target.whole(),
            limit: MAX_MANIFEST_BYTES,
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
        {
            return Err(too_large());
        }
        let body = read_at_most(&mut response, MAX_MANIFEST_BYTES)
            .await
            .map_err(request_err)?
            .ok_or_else(too_large)?;
        let digest = artifact::oci_digest(&sha256_hex(&body));
        if let Some(expected) = reference.digest().filter(|&d| d != digest) {
            return Err(FleetError::DigestMismatch {
                expected: expected.to_string(),
                actual: digest,
            });
        }
        let manifest = serde_json::from_slice(&body).map_err(|e| FleetError::NotAnArtifact {
            reference: self.target.whole(),
            reason: format!("the manifest is not an OCI image manifest: {e}"),
        })?;
        Ok((manifest, digest))
    }
}

/// The body of `response`, or None once it passes `limit` bytes (read no further).
async fn read_at_most(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Where the Docker config file is: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (what `docker login` writes and `docker_credential` reads).
fn docker_config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|dir| dir.join("config.json"))
}

/// The credentials the Docker config file holds for `registry` (its `auths` entries, or the
/// credential helper it names): anonymous when there is no file or no entry for it. A file
/// that names the registry but cannot be used is an error, not a silent anonymous request.
fn docker_credentials(registry: &str) -> Result<RegistryAuth, FleetError> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    if !docker_config_path().is_some_and(|p| p.exists()) {
        return Ok(RegistryAuth::Anonymous);
    }
    // Docker keys Docker Hub by its legacy index address.
    let server = match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    match docker_credential::get_credential(server) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(RegistryAuth::Bearer(token)),
        Err(E::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        Err(e) => Err(FleetError::Credentials {
            registry: registry.to_string(),
            reason: e.to_string(),
        }),
    }
}
