//! A connection to one artifact's registry: the `oci-client` client on a current-thread tokio
//! runtime this value owns (created here, dropped with it; never the runtime library's), with
//! the credentials the standard Docker config file holds for the registry.

use super::reference::ArtifactRef;
use super::FleetError;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use std::path::PathBuf;
use std::time::Duration;

/// Longest wait for a connection to the registry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the next bytes of a response: a registry that stalls mid-blob is treated
/// as a dropped connection (and resumed), never waited on for ever.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for one artifact's registry.
pub struct RegistryClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FleetError::Runtime)?;
        Ok(RegistryClient {
            runtime,
            client,
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

    /// The artifact's image manifest and its digest.
    pub fn manifest(&self) -> Result<(OciImageManifest, String), FleetError> {
        let (client, reference) = self.oci();
        self.block_on(client.pull_image_manifest(reference, &self.auth))
            .map_err(|e| self.registry_err(e))
    }
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
