//! What a skill and a model look like in a registry: media types, configs, annotations, and
//! telling which one a pulled manifest is.
//!
//! **Skills** follow the CNCF TAG Runtime Wasm OCI artifact layout: an OCI image manifest whose
//! config is `application/vnd.wasm.config.v0+json` (`architecture: wasm`, `os: wasip2`, the
//! layer digests, the component's imports and exports) and whose one layer is the signed skill
//! file as `application/wasm`, byte for byte: the `edgenlu-signature` section inside it is the
//! signature, so nothing about trust lives in the registry.
//!
//! **Models** follow the CNCF ModelPack specification (`model-spec` v1): artifact type
//! `application/vnd.cncf.model.manifest.v1+json`, config `application/vnd.cncf.model.config.v1+json`
//! (`format: gguf`, the GGUF's architecture), the GGUF as one uncompressed weight layer
//! (`application/vnd.cncf.model.weight.v1.raw`, with its `org.cncf.model.filepath`), and the
//! project's detached model signature as a second layer of our own type
//! (`application/vnd.edgenlu.model.signature.v1+json`). ModelPack rather than Docker's
//! `application/vnd.docker.ai.gguf.v3`: it is the vendor-neutral CNCF standard (as the Wasm
//! layout is), which registries (Harbor) and runtimes (CRI-O image volumes) read without
//! Docker's model runner; it is format-agnostic, so the GGUF is named by the config's
//! `format`; and a raw layer's digest is the SHA-256 of the file itself, the same digest the
//! model signature signs and the model store records.
//!
//! Every manifest carries `org.opencontainers.image.title` (the skill's or model's name),
//! `.version` (a skill's manifest version; for a model, which has no version number, the
//! first 12 hex digits of its signed digest) and `.created` (RFC 3339).

use super::FleetError;
use oci_client::manifest::{OciDescriptor, OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_spec::image::{ANNOTATION_CREATED, ANNOTATION_TITLE, ANNOTATION_VERSION};
use std::collections::BTreeMap;

/// The CNCF Wasm artifact's config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm artifact's layer media type: the component (here the signed skill file).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// ModelPack's artifact type for a model manifest.
pub const MODEL_ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// ModelPack's model config media type.
pub const MODEL_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
/// ModelPack's media type for uncompressed weights: the GGUF file as it is.
pub const MODEL_WEIGHT_MEDIA_TYPE: &str = "application/vnd.cncf.model.weight.v1.raw";
/// The detached model signature (`edgenlu sign-model`'s JSON).
pub const MODEL_SIGNATURE_MEDIA_TYPE: &str = "application/vnd.edgenlu.model.signature.v1+json";
/// ModelPack's layer annotation naming the file a layer holds.
pub const ANNOTATION_FILEPATH: &str = "org.cncf.model.filepath";

/// Largest model signature accepted (a few hundred bytes in practice).
pub const MAX_SIGNATURE_BYTES: u64 = 64 << 10;
/// Largest model accepted from a registry.
pub const MAX_MODEL_BYTES: u64 = 64 << 30;

/// The component described in a Wasm artifact's config.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WasmComponent {
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// What it exports.
    pub exports: Vec<String>,
}

/// A Wasm artifact's config (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// When it was pushed, RFC 3339.
    pub created: String,
    /// The publisher the skill's manifest names.
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2`: a component.
    pub os: String,
    /// The manifest's layer digests, in order.
    pub layer_digests: Vec<String>,
    /// The component's imports and exports.
    pub component: WasmComponent,
}

/// A ModelPack config's descriptor part.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDescriptor {
    /// When it was pushed, RFC 3339.
    pub created_at: String,
    /// The model's store name.
    pub name: String,
}

/// A ModelPack config's technical part.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelTechnical {
    /// The GGUF's `general.architecture` (e.g. `bert`, `llama`).
    pub architecture: String,
    /// Always `gguf`.
    pub format: String,
}

/// A ModelPack config's layer hashes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Each layer's content digest (uncompressed layers: their digests).
    pub diff_ids: Vec<String>,
}

/// A model artifact's config (`application/vnd.cncf.model.config.v1+json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// General information.
    pub descriptor: ModelDescriptor,
    /// Technical metadata.
    pub config: ModelTechnical,
    /// Layer hashes.
    pub modelfs: ModelFs,
}

/// What a pulled manifest holds.
#[derive(Debug, Clone)]
pub enum Artifact {
    /// A signed skill file.
    Skill {
        /// Its layer.
        file: OciDescriptor,
    },
    /// A GGUF model and its detached signature.
    Model {
        /// The GGUF layer.
        weights: OciDescriptor,
        /// The signature layer.
        signature: OciDescriptor,
    },
}

/// Now, RFC 3339 in UTC to the second (the `created` annotation).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `org.opencontainers.image.*` annotations of an artifact.
pub fn annotations(title: &str, version: &str, created: &str) -> BTreeMap<String, String> {
    [
        (ANNOTATION_TITLE, title),
        (ANNOTATION_VERSION, version),
        (ANNOTATION_CREATED, created),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `sha256:<hex>`, the OCI digest of content whose SHA-256 is `hex`.
pub fn oci_digest(sha256_hex: &str) -> String {
    format!("sha256:{sha256_hex}")
}

/// The hex SHA-256 of an OCI digest, if it is a well-formed `sha256:` one.
pub fn sha256_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// A descriptor of `size` bytes of `media_type` with digest `digest`.
pub fn descriptor(
    media_type: &str,
    digest: String,
    size: u64,
    annotations: Option<BTreeMap<String, String>>,
) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest,
        size: size as i64,
        urls: None,
        annotations,
        artifact_type: None,
    }
}

/// An OCI image manifest over `config` and `layers`.
pub fn manifest(
    config: OciDescriptor,
    layers: Vec<OciDescriptor>,
    artifact_type: Option<&str>,
    annotations: BTreeMap<String, String>,
) -> OciImageManifest {
    OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config,
        layers,
        subject: None,
        artifact_type: artifact_type.map(str::to_string),
        annotations: Some(annotations),
    }
}

/// Which artifact `manifest` is, by its config's media type and its layers' types; anything
/// else is refused before a blob is fetched.
pub fn classify(reference: &str, manifest: &OciImageManifest) -> Result<Artifact, FleetError> {
    let refuse = |reason: String| FleetError::NotAnArtifact {
        reference: reference.to_string(),
        reason,
    };
    let types: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    let layer = |media_type: &str| {
        let mut of_type = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == media_type);
        match (of_type.next(), of_type.next()) {
            (Some(l), None) => Ok(l.clone()),
            _ => Err(refuse(format!(
                "expected exactly one {media_type} layer, found layers {types:?}"
            ))),
        }
    };
    match manifest.config.media_type.as_str() {
        WASM_CONFIG_MEDIA_TYPE if manifest.layers.len() == 1 => Ok(Artifact::Skill {
            file: layer(WASM_LAYER_MEDIA_TYPE)?,
        }),
        MODEL_CONFIG_MEDIA_TYPE if manifest.layers.len() == 2 => Ok(Artifact::Model {
            weights: layer(MODEL_WEIGHT_MEDIA_TYPE)?,
            signature: layer(MODEL_SIGNATURE_MEDIA_TYPE)?,
        }),
        WASM_CONFIG_MEDIA_TYPE | MODEL_CONFIG_MEDIA_TYPE => Err(refuse(format!(
            "config {} with layers {types:?}",
            manifest.config.media_type
        ))),
        other => Err(refuse(format!(
            "config media type {other:?}: a skill is {WASM_CONFIG_MEDIA_TYPE}, a model {MODEL_CONFIG_MEDIA_TYPE}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str) -> OciDescriptor {
        descriptor(media_type, oci_digest(&"0".repeat(64)), 1, None)
    }

    fn with(config: &str, layers: &[&str]) -> OciImageManifest {
        manifest(
            layer(config),
            layers.iter().map(|t| layer(t)).collect(),
            None,
            BTreeMap::new(),
        )
    }

    #[test]
    fn skills_and_models_are_told_apart_and_the_rest_refused() {
        let skill = with(WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE]);
        assert!(matches!(classify("r", &skill), Ok(Artifact::Skill { .. })));
        let model = with(
            MODEL_CONFIG_MEDIA_TYPE,
            &[MODEL_SIGNATURE_MEDIA_TYPE, MODEL_WEIGHT_MEDIA_TYPE],
        );
        assert!(matches!(classify("r", &model), Ok(Artifact::Model { .. })));
        for bad in [
            with(
                WASM_CONFIG_MEDIA_TYPE,
                &[WASM_LAYER_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE],
            ),
            with(WASM_CONFIG_MEDIA_TYPE, &["application/octet-stream"]),
            with(MODEL_CONFIG_MEDIA_TYPE, &[MODEL_WEIGHT_MEDIA_TYPE]),
            with(
                MODEL_CONFIG_MEDIA_TYPE,
                &[MODEL_WEIGHT_MEDIA_TYPE, MODEL_WEIGHT_MEDIA_TYPE],
            ),
            with(
                "application/vnd.oci.image.config.v1+json",
                &[WASM_LAYER_MEDIA_TYPE],
            ),
        ] {
            assert!(matches!(
                classify("r", &bad),
                Err(FleetError::NotAnArtifact { .. })
            ));
        }
    }

    #[test]
    fn digests_are_sha256_hex_only() {
        let hex = "ab".repeat(32);
        assert_eq!(sha256_of(&oci_digest(&hex)), Some(hex.as_str()));
        assert_eq!(sha256_of(&format!("sha256:{}", "AB".repeat(32))), None);
        assert_eq!(sha256_of(&format!("sha512:{hex}")), None);
        assert_eq!(sha256_of("sha256:../../etc"), None);
    }
}
