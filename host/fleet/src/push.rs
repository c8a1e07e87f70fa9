//! Publishing: a signed skill file or a signed model to a registry, as the artifacts
//! [`artifact`](super::artifact) describes. Push checks what it can without the device's
//! trust store (the file frames as a signed skill; a model's signature signs that very GGUF),
//! so a publisher cannot push what no device would install by mistake; the devices decide
//! whom to trust.

use super::artifact::{
    self, ModelConfig, ModelDescriptor, ModelFs, ModelTechnical, WasmComponent, WasmConfig,
};
use super::client::RegistryClient;
use super::{io_err, sha256_hex, FleetError};
use edgenlu_trust::manifest::Manifest;
use edgenlu_trust::models::ModelSignature;
use edgenlu_trust::skillfile;
use oci_client::manifest::{OciDescriptor, OCI_IMAGE_MEDIA_TYPE};
use oci_client::RegistryOperation;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Bytes read from a model file per upload chunk.
const UPLOAD_CHUNK: usize = 4 << 20;

/// What a push published.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pushed to.
    pub reference: String,
    /// The manifest's digest: `REF@DIGEST` names exactly this artifact.
    pub manifest_digest: String,
    /// `skill` or `model`.
    pub kind: &'static str,
    /// The skill's or model's name (the title annotation).
    pub title: String,
    /// The version annotation.
    pub version: String,
    /// Bytes of the skill file or GGUF.
    pub size: u64,
}

/// Pushes signed skill file `bytes`: a CNCF Wasm artifact whose one layer is the file
/// unchanged. Refused unless it frames as a signed skill with a valid manifest.
pub fn push_skill(client: &RegistryClient, bytes: &[u8]) -> Result<Pushed, FleetError> {
    let unverified = skillfile::parse(bytes)?;
    let manifest = Manifest::parse(unverified.manifest)?;
    let created = artifact::now_rfc3339();
    let layer_digest = artifact::oci_digest(&sha256_hex(bytes));
    let config = WasmConfig {
        created: created.clone(),
        author: Some(manifest.publisher.clone()),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer_digest.clone()],
        component: WasmComponent {
            imports: skillfile::component_imports(bytes)?,
            exports: skillfile::component_exports(bytes)?,
        },
    };
    let config = serde_json::to_vec(&config).expect("serializable");
    let version = manifest.version.to_string();
    let file_name = format!("{}-{version}.wasm", manifest.name);
    let layer = artifact::descriptor(
        artifact::WASM_LAYER_MEDIA_TYPE,
        layer_digest,
        bytes.len() as u64,
        Some(artifact::annotations(&file_name, &version, &created)),
    );
    let config_desc = config_descriptor(artifact::WASM_CONFIG_MEDIA_TYPE, &config);
    client.authenticate(RegistryOperation::Push)?;
    upload_small(client, &layer, bytes.to_vec())?;
    upload_small(client, &config_desc, config)?;
    let oci_manifest = artifact::manifest(
        config_desc,
        vec![layer],
        None,
        artifact::annotations(&manifest.name, &version, &created),
    );
    finish(
        client,
        oci_manifest,
        "skill",
        manifest.name,
        version,
        bytes.len() as u64,
    )
}

/// Pushes GGUF file `gguf` with its detached signature `sig`: a ModelPack artifact of the
/// file (streamed, not read into memory) and the signature. Refused unless `sig` signs
/// exactly this file.
pub fn push_model(
    client: &RegistryClient,
    gguf: &Path,
    sig: &ModelSignature,
) -> Result<Pushed, FleetError> {
    let (sha256, size) = hash_file(gguf)?;
    if sha256 != sig.sha256 {
        return Err(FleetError::SignatureMismatch {
            model: sig.model.clone(),
            signed: sig.sha256.clone(),
            file: sha256,
        });
    }
    let architecture = edgenlu_models::gguf::GgufFile::open(gguf)
        .map_err(|source| edgenlu_models::store::StoreError::Gguf {
            name: sig.model.clone(),
            source,
        })?
        .architecture()
        .unwrap_or_default()
        .to_string();
    let created = artifact::now_rfc3339();
    let version = sha256[..12].to_string();
    let sig_bytes = serde_json::to_vec_pretty(sig).expect("serializable");
    let layer_annotations = |file: String| {
        let mut a = artifact::annotations(&file, &version, &created);
        a.insert(artifact::ANNOTATION_FILEPATH.into(), file);
        Some(a)
    };
    let weights = artifact::descriptor(
        artifact::MODEL_WEIGHT_MEDIA_TYPE,
        artifact::oci_digest(&sha256),
        size,
        layer_annotations(format!("{}.gguf", sig.model)),
    );
    let signature = artifact::descriptor(
        artifact::MODEL_SIGNATURE_MEDIA_TYPE,
        artifact::oci_digest(&sha256_hex(&sig_bytes)),
        sig_bytes.len() as u64,
        layer_annotations(format!("{}.sig.json", sig.model)),
    );
    let config = ModelConfig {
        descriptor: ModelDescriptor {
            created_at: created.clone(),
            name: sig.model.clone(),
        },
        config: ModelTechnical {
            architecture,
            format: "gguf".into(),
        },
        modelfs: ModelFs {
            kind: "layers".into(),
            diff_ids: vec![weights.digest.clone(), signature.digest.clone()],
        },
    };
    let config = serde_json::to_vec(&config).expect("serializable");
    let config_desc = config_descriptor(artifact::MODEL_CONFIG_MEDIA_TYPE, &config);
    client.authenticate(RegistryOperation::Push)?;
    upload_file(client, &weights, gguf)?;
    upload_small(client, &signature, sig_bytes)?;
    upload_small(client, &config_desc, config)?;
    let oci_manifest = artifact::manifest(
        config_desc,
        vec![weights, signature],
        Some(artifact::MODEL_ARTIFACT_TYPE),
        artifact::annotations(&sig.model, &version, &created),
    );
    finish(
        client,
        oci_manifest,
        "model",
        sig.model.clone(),
        version,
        size,
    )
}

/// The descriptor of a config blob.
fn config_descriptor(media_type: &str, config: &[u8]) -> OciDescriptor {
    artifact::descriptor(
        media_type,
        artifact::oci_digest(&sha256_hex(config)),
        config.len() as u64,
        None,
    )
}

/// Whether the registry already has blob `desc` (then it is not sent again).
fn has_blob(client: &RegistryClient, desc: &OciDescriptor) -> Result<bool, FleetError> {
    let (oci, reference) = client.oci();
    client
        .block_on(oci.blob_exists(reference, &desc.digest))
        .map_err(|e| client.registry_err(e))
}

/// Uploads a blob held in memory (a skill file, a signature, a config).
fn upload_small(
    client: &RegistryClient,
    desc: &OciDescriptor,
    data: Vec<u8>,
) -> Result<(), FleetError> {
    if has_blob(client, desc)? {
        return Ok(());
    }
    let (oci, reference) = client.oci();
    client
        .block_on(oci.push_blob(reference, data, &desc.digest))
        .map(drop)
        .map_err(|e| client.registry_err(e))
}

/// Uploads file `path` as blob `desc` in chunks, never holding more than one in memory.
fn upload_file(
    client: &RegistryClient,
    desc: &OciDescriptor,
    path: &Path,
) -> Result<(), FleetError> {
    if has_blob(client, desc)? {
        return Ok(());
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        match read_full(&mut file, &mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e.into()), None)),
        }
    });
    let (oci, reference) = client.oci();
    client
        .block_on(oci.push_blob_stream(reference, chunks, &desc.digest, Some(desc.size as u64)))
        .map(drop)
        .map_err(|e| client.registry_err(e))
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// SHA-256 (hex) and size of file `path`, read in chunks.
fn hash_file(path: &Path) -> Result<(String, u64), FleetError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((edgenlu_trust::to_hex(&hasher.finalize()), size))
}

/// The config of a document artifact (a channel, a status record): the OCI empty descriptor
/// (`{}`), as the image spec asks of artifacts that have no config.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Pushes JSON `bytes` as an artifact of one layer of `media_type` (also its `artifactType`)
/// over the empty config, annotated with `title` and `version`; `kind` names it in the result.
pub(crate) fn push_document(
    client: &RegistryClient,
    media_type: &str,
    bytes: Vec<u8>,
    kind: &'static str,
    title: String,
    version: String,
) -> Result<Pushed, FleetError> {
    let created = artifact::now_rfc3339();
    let config = b"{}".to_vec();
    let config_desc = config_descriptor(EMPTY_CONFIG_MEDIA_TYPE, &config);
    let size = bytes.len() as u64;
    let layer = artifact::descriptor(
        media_type,
        artifact::oci_digest(&sha256_hex(&bytes)),
        size,
        None,
    );
    client.authenticate(RegistryOperation::Push)?;
    upload_small(client, &layer, bytes)?;
    upload_small(client, &config_desc, config)?;
    let manifest = artifact::manifest(
        config_desc,
        vec![layer],
        Some(media_type),
        artifact::annotations(&title, &version, &created),
    );
    finish(client, manifest, kind, title, version, size)
}

/// Pushes the manifest (the blobs are there) and says what was published.
fn finish(
    client: &RegistryClient,
    manifest: oci_client::manifest::OciImageManifest,
    kind: &'static str,
    title: String,
    version: String,
    size: u64,
) -> Result<Pushed, FleetError> {
    let (oci, reference) = client.oci();
    let body = serde_json::to_vec(&manifest).expect("serializable");
    let manifest_digest = artifact::oci_digest(&sha256_hex(&body));
    let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
    client
        .block_on(oci.push_manifest_raw(reference, body, content_type))
        .map_err(|e| client.registry_err(e))?;
    Ok(Pushed {
        reference: client.target().whole(),
        manifest_digest,
        kind,
        title,
        version,
        size,
    })
}
