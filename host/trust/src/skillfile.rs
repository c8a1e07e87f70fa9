//! The skill file format: a Wasm component with two custom sections at its top level,
//! `edgenlu-manifest` (the manifest's JSON bytes) and `edgenlu-signature` (which must be the
//! last section). The signature covers the SHA-256 of every byte before the signature
//! section, i.e. every byte of the file except that section itself.
//!
//! Only the top-level section framing is read here (id, LEB128 size, custom-section name),
//! with every length checked against the file; wasmtime validates the rest when it compiles.
//! A tiny reader of our own keeps the signed-bytes boundary exact and obvious.

use super::keys::{key_id, KEY_ID_LEN};
use super::TrustError;
use ed25519_dalek::{Signature, Signer, SigningKey};
use sha2::{Digest, Sha256};

/// Name of the manifest's custom section.
pub const MANIFEST_SECTION: &str = "edgenlu-manifest";
/// Name of the signature's custom section.
pub const SIGNATURE_SECTION: &str = "edgenlu-signature";
/// Version byte that opens a signature record.
const SIGNATURE_FORMAT: u8 = 1;
/// Bytes of a signature record: format, key id, ed25519 signature.
pub const SIGNATURE_RECORD_LEN: usize = 1 + KEY_ID_LEN + 64;
/// Domain separation: a skill signature can never be mistaken for a delegation signature.
const SKILL_CONTEXT: &[u8] = b"edgenlu skill signature v1\n";
/// The component-model preamble: magic, version 0x0d, layer 1.
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// One top-level section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section id (0 for custom sections).
    pub id: u8,
    /// Offset of the id byte.
    pub start: usize,
    /// Offset of the payload (after the custom section's name, for custom sections).
    pub payload_start: usize,
    /// Offset one past the section's last byte.
    pub end: usize,
    /// The custom section's name.
    pub name: Option<String>,
}

/// Reads an unsigned LEB128 u32 at `*pos`, advancing it; refuses overlong or truncated ones.
fn read_u32(bytes: &[u8], pos: &mut usize) -> Result<u32, TrustError> {
    let mut result: u64 = 0;
    for i in 0..5 {
        let b = *bytes
            .get(*pos)
            .ok_or_else(|| TrustError::Malformed(format!("truncated length at byte {}", *pos)))?;
        *pos += 1;
        result |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(result)
                .map_err(|_| TrustError::Malformed(format!("length overflows at byte {}", *pos)));
        }
    }
    Err(TrustError::Malformed(format!(
        "overlong length before byte {}",
        *pos
    )))
}

/// Encodes `v` as unsigned LEB128.
fn write_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Largest skill file accepted: every byte is hashed and held in memory before it is trusted.
pub const MAX_SKILL_BYTES: usize = 256 << 20;

/// Frames `bytes` as a component: the preamble, then every top-level section.
pub fn sections(bytes: &[u8]) -> Result<Vec<Section>, TrustError> {
    if bytes.len() > MAX_SKILL_BYTES {
        return Err(TrustError::Malformed(format!(
            "{} bytes; at most {MAX_SKILL_BYTES} are allowed",
            bytes.len()
        )));
    }
    if bytes.len() < 8 || bytes[..8] != COMPONENT_PREAMBLE {
        return Err(TrustError::Malformed(
            "no Wasm component preamble (\\0asm, version 0x0d, layer 1)".into(),
        ));
    }
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = read_u32(bytes, &mut pos)? as usize;
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                TrustError::Malformed(format!(
                    "section at byte {start} runs past the end of the file"
                ))
            })?;
        let (payload_start, name) = if id == 0 {
            let mut p = pos;
            let len = read_u32(&bytes[..end], &mut p)? as usize;
            let name_end = p.checked_add(len).filter(|&e| e <= end).ok_or_else(|| {
                TrustError::Malformed(format!(
                    "custom section name at byte {start} runs past its section"
                ))
            })?;
            let name = std::str::from_utf8(&bytes[p..name_end]).map_err(|_| {
                TrustError::Malformed(format!("custom section name at byte {start} is not UTF-8"))
            })?;
            (name_end, Some(name.to_string()))
        } else {
            (pos, None)
        };
        out.push(Section {
            id,
            start,
            payload_start,
            end,
            name,
        });
        pos = end;
    }
    Ok(out)
}

/// A custom section named `name` with `payload`, framed.
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    write_u32(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = vec![0u8];
    write_u32(&mut out, body.len() as u32);
    out.extend_from_slice(&body);
    out
}

fn is_edgenlu(s: &Section) -> bool {
    matches!(
        s.name.as_deref(),
        Some(MANIFEST_SECTION | SIGNATURE_SECTION)
    )
}

/// The component without any `edgenlu-*` section (what `sign` starts from, so re-signing a
/// signed file replaces its manifest and signature rather than stacking them).
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, TrustError> {
    let secs = sections(bytes)?;
    let mut out = bytes[..8].to_vec();
    for s in secs.iter().filter(|s| !is_edgenlu(s)) {
        out.extend_from_slice(&bytes[s.start..s.end]);
    }
    Ok(out)
}

/// The message a skill signature covers: a context string and the SHA-256 of `signed`.
fn message(signed: &[u8]) -> Vec<u8> {
    let mut m = SKILL_CONTEXT.to_vec();
    m.extend_from_slice(&Sha256::digest(signed));
    m
}

/// Signs `component` with `manifest` (its raw bytes: the caller validates them; tests pass
/// broken ones on purpose): strips old `edgenlu-*` sections, appends the manifest, then the
/// signature over everything before it.
pub fn sign(component: &[u8], manifest: &[u8], key: &SigningKey) -> Result<Vec<u8>, TrustError> {
    let mut out = strip(component)?;
    out.extend_from_slice(&custom_section(MANIFEST_SECTION, manifest));
    let sig = key.sign(&message(&out));
    let mut record = vec![SIGNATURE_FORMAT];
    record.extend_from_slice(&key_id(&key.verifying_key()));
    record.extend_from_slice(&sig.to_bytes());
    out.extend_from_slice(&custom_section(SIGNATURE_SECTION, &record));
    Ok(out)
}

/// A skill file's parts, framed but not yet trusted.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The manifest's raw bytes.
    pub manifest: &'a [u8],
    /// Key id named by the signature.
    pub key_id: [u8; KEY_ID_LEN],
    /// The signature.
    pub signature: Signature,
    /// The message the signature must cover (context + SHA-256 of the signed bytes).
    pub message: Vec<u8>,
    /// SHA-256 of the whole file, hex (identifies this exact file in the stores).
    pub file_sha256: String,
}

/// Frames a skill file and pulls out its manifest and signature, refusing any file whose
/// signature is missing, duplicated or not last, or whose manifest is missing or duplicated.
pub fn parse(bytes: &[u8]) -> Result<Unverified<'_>, TrustError> {
    let secs = sections(bytes)?;
    let named = |n: &str| -> Vec<&Section> {
        secs.iter()
            .filter(|s| s.name.as_deref() == Some(n))
            .collect()
    };
    let sigs = named(SIGNATURE_SECTION);
    let sig = match sigs.as_slice() {
        [] => return Err(TrustError::Unsigned),
        [one] => *one,
        many => return Err(TrustError::DuplicateSignature(many.len())),
    };
    if sig.end != bytes.len() {
        return Err(TrustError::SignatureNotLast);
    }
    let manifests = named(MANIFEST_SECTION);
    let manifest = match manifests.as_slice() {
        [] => return Err(TrustError::MissingManifest),
        [one] => *one,
        many => return Err(TrustError::DuplicateManifest(many.len())),
    };
    let record = &bytes[sig.payload_start..sig.end];
    if record.len() != SIGNATURE_RECORD_LEN {
        return Err(TrustError::BadSignatureEncoding(format!(
            "{} bytes, expected {SIGNATURE_RECORD_LEN}",
            record.len()
        )));
    }
    if record[0] != SIGNATURE_FORMAT {
        return Err(TrustError::BadSignatureEncoding(format!(
            "format {}, expected {SIGNATURE_FORMAT}",
            record[0]
        )));
    }
    let sig_bytes: [u8; 64] = record[1 + KEY_ID_LEN..].try_into().expect("length checked");
    Ok(Unverified {
        manifest: &bytes[manifest.payload_start..manifest.end],
        key_id: record[1..1 + KEY_ID_LEN]
            .try_into()
            .expect("length checked"),
        signature: Signature::from_bytes(&sig_bytes),
        message: message(&bytes[..sig.start]),
        file_sha256: super::to_hex(&Sha256::digest(bytes)),
    })
}

/// What a signed file's manifest says it is, read before any check (a store verifies it all
/// again): where an install sends it. A file that does not parse is a skill, so the skill
/// store says what is wrong with it.
pub fn declared_kind(bytes: &[u8]) -> super::manifest::Kind {
    parse(bytes)
        .ok()
        .and_then(|f| super::manifest::Manifest::parse(f.manifest).ok())
        .map_or(super::manifest::Kind::Skill, |m| m.kind)
}

/// Appends a custom section (for tools and tests that build odd files on purpose).
pub fn append_custom_section(bytes: &mut Vec<u8>, name: &str, payload: &[u8]) {
    bytes.extend_from_slice(&custom_section(name, payload));
}

/// The names of the component's own (top-level) imports, e.g. `edgenlu:nlu/kernels@0.1.0`:
/// what the host will have to link, hence which capabilities the component can exercise.
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, TrustError> {
    Ok(component_import_items(bytes)?
        .into_iter()
        .map(|i| i.name)
        .collect())
}

/// The names of the component's own (top-level) exports other than types, e.g.
/// `edgenlu:nlu/skill@0.1.0`: what it offers its host (an OCI artifact's config lists them).
pub fn component_exports(bytes: &[u8]) -> Result<Vec<String>, TrustError> {
    use wasmparser::{ComponentExternalKind, Parser, Payload};
    let malformed = |e: wasmparser::BinaryReaderError| TrustError::Malformed(e.to_string());
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    if export.kind != ComponentExternalKind::Type {
                        exports.push(export.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

/// One top-level import of a component and, for an instance (an interface), the names of the
/// items it takes from it: functions such as `attend`, resources such as `kv-cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedInterface {
    /// The import's name, e.g. `edgenlu:nlu/kernels@0.1.0`.
    pub name: String,
    /// The names the component's instance type for it declares (empty when it is no instance).
    pub items: Vec<String>,
}

/// The component's top-level imports with the items each takes from its interface. The items
/// come from the instance type the import names, found by following the component's type
/// index space (type definitions, type aliases, imported and exported types add to it).
pub fn component_import_items(bytes: &[u8]) -> Result<Vec<ImportedInterface>, TrustError> {
    use wasmparser::{
        ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind, ComponentType,
        ComponentTypeRef, InstanceTypeDeclaration, Parser, Payload,
    };
    let malformed = |e: wasmparser::BinaryReaderError| TrustError::Malformed(e.to_string());
    let mut depth = 0usize;
    // Items of each component type at the top level; None for types that are no instance.
    let mut types: Vec<Option<Vec<String>>> = Vec::new();
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentTypeSection(reader) if depth == 0 => {
                for ty in reader {
                    types.push(match ty.map_err(malformed)? {
                        ComponentType::Instance(decls) => Some(
                            decls
                                .iter()
                                .filter_map(|d| match d {
                                    InstanceTypeDeclaration::Export { name, .. } => {
                                        Some(name.name.to_string())
                                    }
                                    _ => None,
                                })
                                .collect(),
                        ),
                        _ => None,
                    });
                }
            }
            Payload::ComponentAliasSection(reader) if depth == 0 => {
                for alias in reader {
                    let is_type = match alias.map_err(malformed)? {
                        ComponentAlias::InstanceExport { kind, .. } => {
                            kind == ComponentExternalKind::Type
                        }
                        ComponentAlias::Outer { kind, .. } => kind == ComponentOuterAliasKind::Type,
                        ComponentAlias::CoreInstanceExport { .. } => false,
                    };
                    if is_type {
                        types.push(None);
                    }
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(malformed)?;
                    let items = match import.ty {
                        ComponentTypeRef::Instance(i) => {
                            types.get(i as usize).cloned().flatten().unwrap_or_default()
                        }
                        ComponentTypeRef::Type(_) => {
                            types.push(None);
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    imports.push(ImportedInterface {
                        name: import.name.name.to_string(),
                        items,
                    });
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    if export.map_err(malformed)?.kind == ComponentExternalKind::Type {
                        types.push(None);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}
