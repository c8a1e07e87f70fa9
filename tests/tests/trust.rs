//! [trust]: signed skill files, the trust store and the skill store. Every refusal is checked
//! for its own error; install, rollback, health checks, kill -9 during install and a full
//! disk run against a fresh store in a temporary directory.

use edgenlu::bundled::DEFAULT_ENCODER;
use edgenlu_device::installed::{InstalledSkills, LiveSkill, ManifestGrants};
use edgenlu_models::store::ModelStore;
use edgenlu_tests::{acme_trust, require_model, runtime, test_key as key, tiny_index};
use edgenlu_trust::keys::{self, PublicKeyFile};
use edgenlu_trust::manifest::{Capability, Manifest, MAX_MANIFEST_BYTES};
use edgenlu_trust::skillfile::{self, MANIFEST_SECTION, SIGNATURE_SECTION};
use edgenlu_trust::skills::{InstallError, SkillStore};
use edgenlu_trust::store::{Delegation, TrustStore};
use edgenlu_trust::{dev, unix_now, TrustError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DAY: u64 = 86_400;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "edgenlu-trust-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn component() -> Vec<u8> {
    edgenlu::bundled::components::SKILL_INTENTS.bytes.to_vec()
}

fn acme_manifest(version: u64) -> Manifest {
    let mut m = dev::intents_manifest(DEFAULT_ENCODER, "snips-intents", version);
    m.publisher = "acme".into();
    m
}

fn signed(m: &Manifest) -> Vec<u8> {
    skillfile::sign(&component(), &m.to_bytes().unwrap(), &key(2)).unwrap()
}

fn default_trust(dir: &Path) -> TrustStore {
    acme_trust(
        dir,
        vec![],
        &["all-minilm-*", "snips-*", "trust-snips-*"],
        unix_now() + DAY,
    )
}

fn kind(e: &TrustError) -> &'static str {
    match e {
        TrustError::Malformed(_) => "malformed",
        TrustError::Unsigned => "unsigned",
        TrustError::DuplicateSignature(_) => "duplicate-signature",
        TrustError::SignatureNotLast => "signature-not-last",
        TrustError::BadSignatureEncoding(_) => "bad-signature-encoding",
        TrustError::MissingManifest => "missing-manifest",
        TrustError::DuplicateManifest(_) => "duplicate-manifest",
        TrustError::UnknownKey { .. } => "unknown-key",
        TrustError::BadSignature { .. } => "bad-signature",
        other => panic!("unexpected refusal for a modified file: {other}"),
    }
}

#[test]
fn a_signed_skill_verifies_and_inspects() {
    let dir = TempDir::new("ok");
    let trust = default_trust(&dir.0);
    let file = signed(&acme_manifest(1));
    let v = trust.verify(&file, unix_now()).unwrap();
    assert_eq!(v.manifest, acme_manifest(1));
    assert_eq!(v.delegation.publisher, "acme");
    // The signed file is still a component wasmtime accepts: custom sections are ignored.
    let secs = skillfile::sections(&file).unwrap();
    assert_eq!(
        secs.last().unwrap().name.as_deref(),
        Some(SIGNATURE_SECTION)
    );
    // Re-signing replaces the edgenlu sections instead of stacking them.
    let again = skillfile::sign(&file, &acme_manifest(2).to_bytes().unwrap(), &key(2)).unwrap();
    assert_eq!(
        trust.verify(&again, unix_now()).unwrap().manifest.version,
        2
    );
    assert_eq!(again.len(), file.len());
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let dir = TempDir::new("flip");
    let trust = default_trust(&dir.0);
    let file = signed(&acme_manifest(1));
    let secs = skillfile::sections(&file).unwrap();
    // Positions: the preamble, the first and last bytes and 30 spread positions of every
    // section, then pseudo-random positions over the whole file up to 1,200.
    let mut positions: Vec<usize> = (0..8).collect();
    for s in &secs {
        let len = s.end - s.start;
        positions.extend((0..30.min(len)).map(|i| s.start + i * len / 30.min(len)));
        positions.extend([s.start, s.payload_start.min(s.end - 1), s.end - 1]);
    }
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while positions.len() < 1200 {
        positions.push((rand() % file.len() as u64) as usize);
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_section = vec![0usize; secs.len()];
    for &pos in &positions {
        let mut bad = file.clone();
        // A random non-zero XOR mask: one bit or many.
        bad[pos] ^= (rand() % 255 + 1) as u8;
        let err = trust
            .verify(&bad, unix_now())
            .expect_err(&format!("a flip at byte {pos} was accepted"));
        *kinds.entry(kind(&err)).or_default() += 1;
        if let Some(i) = secs.iter().position(|s| (s.start..s.end).contains(&pos)) {
            per_section[i] += 1;
        }
    }
    eprintln!(
        "{} flips over {} sections ({} bytes): {kinds:?}",
        positions.len(),
        secs.len(),
        file.len()
    );
    assert!(positions.len() >= 1000);
    assert!(per_section.iter().all(|&n| n >= 3), "{per_section:?}");
    assert!(kinds["bad-signature"] > 900);
}

#[test]
fn stripped_duplicated_or_misplaced_sections_are_refused() {
    let dir = TempDir::new("sections");
    let trust = default_trust(&dir.0);
    let file = signed(&acme_manifest(1));
    let secs = skillfile::sections(&file).unwrap();
    let sig = secs.last().unwrap();
    let now = unix_now();

    let stripped = file[..sig.start].to_vec();
    assert!(matches!(
        trust.verify(&stripped, now),
        Err(TrustError::Unsigned)
    ));
    assert!(matches!(
        trust.verify(&skillfile::strip(&file).unwrap(), now),
        Err(TrustError::Unsigned)
    ));

    let mut doubled = file.clone();
    doubled.extend_from_slice(&file[sig.start..]);
    assert!(matches!(
        trust.verify(&doubled, now),
        Err(TrustError::DuplicateSignature(2))
    ));

    let mut trailing = file.clone();
    skillfile::append_custom_section(&mut trailing, "name", b"x");
    assert!(matches!(
        trust.verify(&trailing, now),
        Err(TrustError::SignatureNotLast)
    ));

    // A second manifest before the signature (signed bytes!) is refused all the same.
    let man = secs
        .iter()
        .find(|s| s.name.as_deref() == Some(MANIFEST_SECTION))
        .unwrap();
    let mut dup = file[..sig.start].to_vec();
    dup.extend_from_slice(&file[man.start..man.end]);
    dup.extend_from_slice(&file[sig.start..]);
    assert!(matches!(
        trust.verify(&dup, now),
        Err(TrustError::DuplicateManifest(2))
    ));

    let mut no_manifest = file[..man.start].to_vec();
    no_manifest.extend_from_slice(&file[man.end..]);
    assert!(matches!(
        trust.verify(&no_manifest, now),
        Err(TrustError::MissingManifest)
    ));

    assert!(matches!(
        trust.verify(b"\0asm\x01\0\0\0", now),
        Err(TrustError::Malformed(_))
    ));
    assert!(matches!(
        trust.verify(&file[..file.len() - 1], now),
        Err(TrustError::Malformed(_))
    ));
}

#[test]
fn an_unknown_key_is_refused() {
    let dir = TempDir::new("unknown");
    let trust = default_trust(&dir.0);
    let m = acme_manifest(1).to_bytes().unwrap();
    let file = skillfile::sign(&component(), &m, &key(9)).unwrap();
    let err = trust.verify(&file, unix_now()).unwrap_err();
    assert!(
        matches!(&err, TrustError::UnknownKey { key_id } if *key_id == keys::key_id_hex(&key(9).verifying_key())),
        "{err}"
    );
    // The root key itself signs delegations, not skills.
    let file = skillfile::sign(&component(), &m, &key(1)).unwrap();
    assert!(matches!(
        trust.verify(&file, unix_now()),
        Err(TrustError::UnknownKey { .. })
    ));
    // A delegation signed by an unpinned root is refused when added.
    let p = PublicKeyFile::new("evil", &key(9).verifying_key());
    let d = Delegation {
        publisher: "evil".into(),
        key_id: p.key_id,
        public_key: p.public_key,
        capabilities: vec![Capability::Uplink],
        models: vec!["*".into()],
        issued: 0,
        expires: u64::MAX,
    };
    assert!(matches!(
        trust.add_delegation(&d.sign(&key(8)).unwrap()),
        Err(TrustError::BadDelegation(_))
    ));
    // ... and so is one whose body was edited after the root signed it.
    let mut signed_d = d.sign(&key(1)).unwrap();
    signed_d.body = signed_d.body.replace("evil", "acme");
    assert!(matches!(
        trust.add_delegation(&signed_d),
        Err(TrustError::BadDelegation(_))
    ));
}

#[test]
fn a_capability_the_publisher_lacks_is_refused() {
    let dir = TempDir::new("cap");
    let trust = acme_trust(&dir.0, vec![Capability::Generate], &["*"], unix_now() + DAY);
    let mut m = acme_manifest(1);
    m.capabilities = vec![Capability::Generate];
    trust.verify(&signed(&m), unix_now()).unwrap();
    m.capabilities = vec![Capability::Generate, Capability::Uplink];
    let err = trust.verify(&signed(&m), unix_now()).unwrap_err();
    assert!(
        matches!(&err, TrustError::CapabilityNotDelegated { capabilities, imports, scope } if scope.publisher == "acme" && *capabilities == [Capability::Uplink] && imports.is_empty()),
        "{err}"
    );
}

/// A manifest of acme's for the bundled chat skill over the default decoder, without probes
/// (it loads and links, or it is refused) and with `caps`.
fn chat_manifest(caps: Vec<Capability>) -> Manifest {
    use edgenlu::bundled::DEFAULT_DECODER;
    let mut m = acme_manifest(1);
    m.name = "chat".into();
    m.models = vec![DEFAULT_DECODER.into()];
    m.tokenizer = Some(edgenlu_trust::manifest::TokenizerRef {
        component: "bpe".into(),
        model: DEFAULT_DECODER.into(),
    });
    m.config = [("model".to_string(), DEFAULT_DECODER.to_string())].into();
    m.health = vec![];
    m.capabilities = caps;
    m.budgets.host_memory_mib = Some(128);
    m.budgets.deadline_ms = Some(60_000);
    m
}

#[test]
fn an_import_needing_an_undeclared_capability_is_refused() {
    use edgenlu::bundled::{components, DEFAULT_DECODER};
    require_model(DEFAULT_DECODER);
    // The intents skill's imports are read; none of them needs a capability.
    let intents = skillfile::component_import_items(&component()).unwrap();
    assert!(
        intents
            .iter()
            .any(|i| i.name.starts_with("edgenlu:nlu/kernels")),
        "{intents:?}"
    );
    assert!(Capability::required_by(&intents).is_empty(), "{intents:?}");
    // The chat skill drives the decoder through edgenlu:nlu/llm, and composes one from the
    // decoder kernels for its primitives pass: both need `generate`.
    let chat = components::SKILL_CHAT.bytes;
    let needed = Capability::required_by(&skillfile::component_import_items(chat).unwrap());
    for interface in ["edgenlu:nlu/llm@", "edgenlu:nlu/kernels@0.1.0#kv-cache"] {
        assert!(
            needed
                .iter()
                .any(|(i, c)| i.starts_with(interface) && *c == Capability::Generate),
            "{interface}: {needed:?}"
        );
    }

    let dir = TempDir::new("imports");
    acme_trust(&dir.0, vec![Capability::Generate], &["*"], unix_now() + DAY);
    let skills = SkillStore::at(&dir.0).unwrap();
    let sign = |m: &Manifest| skillfile::sign(chat, &m.to_bytes().unwrap(), &key(2)).unwrap();
    // Signed without the capability: refused at install, naming it.
    let err = skills
        .install(&sign(&chat_manifest(vec![])), unix_now())
        .unwrap_err();
    assert!(
        matches!(&err, TrustError::CapabilityNotDeclared { imports, capability: Capability::Generate, .. } if *imports == needed.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>()),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("the component imports edgenlu:nlu/")
            && msg.contains("edgenlu:nlu/llm@")
            && msg.contains(
                ", which need capability `generate`: add \"generate\" to the manifest's \
                 capabilities, or remove those imports from the component; publisher \"acme\"'s \
                 delegation allows it"
            ),
        "{msg}"
    );
    assert!(skills.state("chat").unwrap().is_none());
    // Declared, and delegated: it installs, loads and generates.
    let rt = runtime();
    skills
        .install_checked(
            &rt,
            &sign(&chat_manifest(vec![Capability::Generate])),
            unix_now(),
        )
        .unwrap();
    let (_, skill) = skills.load(&rt, "chat").unwrap();
    let request = edgenlu::ChatRequest {
        prompt: "Say hello.".into(),
        template: true,
        system: None,
        max_tokens: 4,
        sampling: edgenlu::SamplingParams::GREEDY,
        forward: edgenlu::Forward::Fused,
        constraint: None,
    };
    let reply = skill.chat(&request, None).unwrap();
    assert!(reply.usage.generated_tokens > 0);
    // Declared but not delegated: refused by the delegation check.
    let dir2 = TempDir::new("imports2");
    let strict = acme_trust(&dir2.0, vec![], &["*"], unix_now() + DAY);
    let err = strict
        .verify(
            &sign(&chat_manifest(vec![Capability::Generate])),
            unix_now(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, TrustError::CapabilityNotDelegated { capabilities, imports, .. } if *capabilities == [Capability::Generate] && imports.len() == needed.len()),
        "{err}"
    );
}

#[test]
fn an_expired_delegation_is_refused() {
    let dir = TempDir::new("expired");
    let now = unix_now();
    let trust = acme_trust(&dir.0, vec![], &["*"], now - 1);
    let err = trust.verify(&signed(&acme_manifest(1)), now).unwrap_err();
    assert!(
        matches!(&err, TrustError::DelegationExpired { publisher, expired_at, .. } if publisher == "acme" && *expired_at == now - 1),
        "{err}"
    );
    // Verified as installed-and-running (no expiry check), the file itself is fine.
    trust.verify_signed(&signed(&acme_manifest(1))).unwrap();

    // A release with its own, passed, expiry under a valid delegation.
    let dir = TempDir::new("expired-release");
    let trust = default_trust(&dir.0);
    let mut m = acme_manifest(1);
    m.expires = Some(now + 60);
    trust.verify(&signed(&m), now).unwrap();
    let err = trust.verify(&signed(&m), now + 60).unwrap_err();
    assert!(
        matches!(&err, TrustError::ReleaseExpired { version: 1, expired_at, .. } if *expired_at == now + 60),
        "{err}"
    );
}

#[test]
fn an_ungranted_model_is_refused() {
    let dir = TempDir::new("model");
    let trust = acme_trust(&dir.0, vec![], &["all-minilm-*"], unix_now() + DAY);
    let err = trust
        .verify(&signed(&acme_manifest(1)), unix_now())
        .unwrap_err();
    assert!(
        matches!(&err, TrustError::ModelNotGranted { models, scope, .. } if *models == ["snips-intents"] && scope.models == ["all-minilm-*"]),
        "{err}"
    );
}

#[test]
fn a_publisher_signing_as_another_is_refused() {
    let dir = TempDir::new("publisher");
    let trust = default_trust(&dir.0);
    let mut m = acme_manifest(1);
    m.publisher = "edgenlu-dev".into();
    assert!(matches!(
        trust.verify(&signed(&m), unix_now()),
        Err(TrustError::PublisherMismatch { .. })
    ));
}

#[test]
fn oversized_or_malformed_manifests_are_refused() {
    let dir = TempDir::new("manifest");
    let trust = default_trust(&dir.0);
    let sign_raw = |bytes: &[u8]| skillfile::sign(&component(), bytes, &key(2)).unwrap();
    let now = unix_now();

    let mut big = acme_manifest(1);
    big.config
        .insert("pad".into(), "x".repeat(MAX_MANIFEST_BYTES));
    let mut raw = serde_json::to_vec(&big).unwrap();
    raw.resize(MAX_MANIFEST_BYTES + 1, b' ');
    assert!(matches!(
        trust.verify(&sign_raw(&raw), now),
        Err(TrustError::ManifestTooLarge { size, limit }) if size == MAX_MANIFEST_BYTES + 1 && limit == MAX_MANIFEST_BYTES
    ));
    assert!(matches!(big.to_bytes(), Err(TrustError::BadManifest(_))));

    for (bytes, what) in [
        (&b"not json"[..], "expected"),
        (b"{}", "missing field"),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","extra":1}"#,
            "unknown field",
        ),
        (
            br#"{"format":2,"name":"x","version":1,"publisher":"acme"}"#,
            "format 2",
        ),
        (
            br#"{"format":1,"name":"../x","version":1,"publisher":"acme"}"#,
            "name",
        ),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","capabilities":["root"]}"#,
            "unknown variant",
        ),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","budgets":{"memory_mib":100000}}"#,
            "memory_mib",
        ),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","budgets":{"handles":0}}"#,
            "budgets.handles",
        ),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","budgets":{"host_memory_mib":4294967295}}"#,
            "budgets.host_memory_mib",
        ),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","tokenizer":{"component":"wordpiece","model":"all-minilm-l6-v2.q8_0"}}"#,
            "not among",
        ),
        (
            br#"{"format":1,"name":"x","version":1,"publisher":"acme","models":["all-minilm-l6-v2.q8_0"],"tokenizer":{"component":"../tok","model":"all-minilm-l6-v2.q8_0"}}"#,
            "unknown tokenizer component",
        ),
    ] {
        let err = trust.verify(&sign_raw(bytes), now).unwrap_err();
        assert!(
            matches!(&err, TrustError::BadManifest(m) if m.contains(what)),
            "{}: {err}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn install_list_rollback_remove_round_trip() {
    let dir = TempDir::new("roundtrip");
    default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    let now = unix_now();
    let v1 = signed(&acme_manifest(1));
    let v2 = signed(&acme_manifest(2));

    let r = skills.install(&v1, now).unwrap();
    assert_eq!((r.version, r.previous), (1, None));
    let r = skills.install(&v2, now).unwrap();
    assert_eq!((r.version, r.previous), (2, Some(1)));
    // Reinstalling the same file changes nothing.
    let r = skills.install(&v2, now).unwrap();
    assert_eq!((r.version, r.previous), (2, Some(1)));
    let list = skills.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, "intents");
    assert_eq!(skills.current("intents").unwrap().0.manifest.version, 2);

    // A lower version than accepted is refused, and so is a reused version number.
    let err = skills.install(&v1, now).unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Rollback {
                version: 1,
                highest: 2,
                ..
            }
        ),
        "{err}"
    );
    let mut other = acme_manifest(2);
    other.config.insert("x".into(), "y".into());
    assert!(matches!(
        skills.install(&signed(&other), now),
        Err(TrustError::VersionReused { version: 2, .. })
    ));

    // The owner's rollback switches between files on the device, both ways.
    let s = skills.rollback("intents").unwrap();
    assert_eq!(s.current.version, 1);
    assert_eq!(skills.current("intents").unwrap().0.manifest.version, 1);
    assert_eq!(skills.rollback("intents").unwrap().current.version, 2);

    let v3 = signed(&acme_manifest(3));
    let r = skills.install(&v3, now).unwrap();
    assert_eq!((r.version, r.previous), (3, Some(2)));
    // Only the current and previous files are kept.
    let files = std::fs::read_dir(dir.0.join("skills/intents"))
        .unwrap()
        .count();
    assert_eq!(files, 3, "two .wasm files and state.json");

    // A tampered installed file no longer loads.
    let (_, path) = skills.current("intents").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        skills.current("intents"),
        Err(TrustError::BadSignature { .. })
    ));

    skills.remove("intents").unwrap();
    assert!(matches!(
        skills.current("intents"),
        Err(TrustError::NotInstalled(_))
    ));
    assert!(matches!(
        skills.rollback("intents"),
        Err(TrustError::NotInstalled(_))
    ));
    // Removing does not reset the version floor.
    assert!(matches!(
        skills.install(&v2, now),
        Err(TrustError::Rollback { .. })
    ));
}

#[test]
fn revoking_a_publisher_or_root_stops_its_skills() {
    let dir = TempDir::new("revoke");
    let trust = default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    skills
        .install(&signed(&acme_manifest(1)), unix_now())
        .unwrap();
    assert!(trust.remove_delegation("acme").unwrap());
    assert!(!trust.remove_delegation("acme").unwrap());
    assert!(matches!(
        skills.current("intents"),
        Err(TrustError::UnknownKey { .. })
    ));
    // Delegated again, then the root that signed the delegation is unpinned.
    let trust = default_trust(&dir.0);
    skills.current("intents").unwrap();
    let root_id = keys::key_id_hex(&key(1).verifying_key());
    assert!(trust.remove_root(&root_id).unwrap());
    assert!(trust.delegations().unwrap().is_empty());
    assert!(matches!(
        skills.current("intents"),
        Err(TrustError::UnknownKey { .. })
    ));
}

#[test]
fn a_model_whose_digest_differs_is_refused() {
    let dir = TempDir::new("digest");
    let models = ModelStore::at(&dir.0).unwrap();
    let path = models.path_for("tiny").unwrap();
    std::fs::write(&path, b"GGUF but not really").unwrap();
    models.record("tiny", "test").unwrap();
    std::fs::write(&path, b"GGUF but not really!").unwrap();
    assert!(matches!(
        models.verify("tiny"),
        Err(edgenlu_models::StoreError::DigestMismatch(_))
    ));
}

#[test]
fn a_pinned_model_with_another_digest_is_refused() {
    let dir = TempDir::new("pin");
    let trust = default_trust(&dir.0);
    let models = ModelStore::at(&dir.0).unwrap();
    let path = models.path_for(DEFAULT_ENCODER).unwrap();
    std::fs::write(&path, b"the encoder the publisher tested").unwrap();
    let good = models.record(DEFAULT_ENCODER, "test").unwrap().sha256;
    let mut m = acme_manifest(1);
    m.model_sha256.insert(DEFAULT_ENCODER.into(), good.clone());
    trust.verify(&signed(&m), unix_now()).unwrap();

    std::fs::write(&path, b"another encoder").unwrap();
    let other = models.record(DEFAULT_ENCODER, "test").unwrap().sha256;
    let err = trust.verify(&signed(&m), unix_now()).unwrap_err();
    assert!(
        matches!(&err, TrustError::ModelDigest { model, pinned, recorded } if model == DEFAULT_ENCODER && *pinned == good && recorded.as_deref() == Some(other.as_str())),
        "{err}"
    );
    // A pinned model the store does not have at all.
    m.model_sha256.insert("snips-intents".into(), good.clone());
    m.model_sha256.insert(DEFAULT_ENCODER.into(), other);
    assert!(matches!(
        trust.verify(&signed(&m), unix_now()),
        Err(TrustError::ModelDigest { recorded: None, .. })
    ));
    // A pin on a model the manifest does not list, or one that is not a digest.
    let mut bad = acme_manifest(1);
    bad.model_sha256.insert("other".into(), good);
    assert!(matches!(bad.to_bytes(), Err(TrustError::BadManifest(_))));
    let mut bad = acme_manifest(1);
    bad.model_sha256
        .insert(DEFAULT_ENCODER.into(), "ABC".into());
    assert!(matches!(bad.to_bytes(), Err(TrustError::BadManifest(_))));
}

#[test]
fn a_model_that_differs_from_its_detached_signature_is_refused() {
    use edgenlu_trust::models::ModelSignature;
    let dir = TempDir::new("modelsig");
    let trust = default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    let models = ModelStore::at(&dir.0).unwrap();
    let path = models.path_for(DEFAULT_ENCODER).unwrap();
    std::fs::write(&path, b"the vendor's encoder").unwrap();
    let good = models.record(DEFAULT_ENCODER, "test").unwrap().sha256;
    let sig = ModelSignature::sign(DEFAULT_ENCODER, &good, &key(2));
    trust.add_model_signature(&sig, unix_now()).unwrap();
    skills
        .install(&signed(&acme_manifest(1)), unix_now())
        .unwrap();

    // The model is swapped under the skill: loading refuses before anything is mapped.
    std::fs::write(&path, b"someone else's encoder").unwrap();
    let other = models.record(DEFAULT_ENCODER, "test").unwrap().sha256;
    let err = skills.current("intents").unwrap_err();
    assert!(
        matches!(&err, TrustError::ModelDigest { model, pinned, recorded } if model == DEFAULT_ENCODER && *pinned == good && recorded.as_deref() == Some(other.as_str())),
        "{err}"
    );
    assert!(matches!(
        skills.install(&signed(&acme_manifest(2)), unix_now()),
        Err(TrustError::ModelDigest { .. })
    ));
    // The vendor signs the new model: the skill loads again.
    trust
        .add_model_signature(
            &ModelSignature::sign(DEFAULT_ENCODER, &other, &key(2)),
            unix_now(),
        )
        .unwrap();
    skills.current("intents").unwrap();

    // Refused signatures: an unknown key, a model outside the delegation, a forged digest.
    assert!(matches!(
        trust.add_model_signature(
            &ModelSignature::sign(DEFAULT_ENCODER, &good, &key(9)),
            unix_now()
        ),
        Err(TrustError::BadModelSignature(_))
    ));
    assert!(matches!(
        trust.add_model_signature(
            &ModelSignature::sign("smollm2-135m-instruct.q4_1", &good, &key(2)),
            unix_now()
        ),
        Err(TrustError::ModelNotGranted { .. })
    ));
    let mut forged = ModelSignature::sign(DEFAULT_ENCODER, &good, &key(2));
    forged.sha256 = other.clone();
    assert!(matches!(
        trust.add_model_signature(&forged, unix_now()),
        Err(TrustError::BadModelSignature(_))
    ));
}

/// Random damage (truncation, insertion, overwritten runs) never panics the verifier.
#[test]
fn random_damage_never_panics() {
    let dir = TempDir::new("damage");
    let trust = default_trust(&dir.0);
    let file = signed(&acme_manifest(1));
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut rand = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    for _ in 0..3000 {
        let mut bad = file.clone();
        match rand(3) {
            0 => bad.truncate(rand(file.len())),
            1 => {
                let at = rand(file.len());
                let junk: Vec<u8> = (0..rand(16) + 1).map(|_| rand(256) as u8).collect();
                bad.splice(at..at, junk);
            }
            _ => {
                let at = rand(file.len());
                let end = (at + rand(8) + 1).min(bad.len());
                for b in &mut bad[at..end] {
                    *b = rand(256) as u8;
                }
            }
        }
        if bad != file {
            assert!(trust.verify(&bad, unix_now()).is_err());
        }
        let _ = skillfile::sections(&bad);
        let _ = Manifest::parse(&bad[..bad.len().min(4096)]);
    }
}

#[test]
fn a_failing_health_check_rolls_back_by_itself() {
    let index = tiny_index();
    let dir = TempDir::new("health");
    default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    let rt = runtime();
    let now = unix_now();
    let manifest = |version| {
        let mut m = dev::intents_manifest(DEFAULT_ENCODER, index, version);
        m.publisher = "acme".into();
        m
    };
    let r = skills
        .install_checked(&rt, &signed(&manifest(1)), now)
        .unwrap();
    assert_eq!(r.probes_passed, Some(3));

    let live = LiveSkill::open(&skills, &rt, "intents").unwrap();
    assert_eq!(live.version(), 1);
    let in_flight = live.get();

    let mut broken = manifest(2);
    broken.health[0].intent = "BookRestaurant".into();
    let err = skills
        .install_checked(&rt, &signed(&broken), now)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            InstallError::HealthCheck {
                version: 2,
                restored: Some(1),
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("rolled back to version 1"), "{msg}");
    assert!(msg.contains("expected intent \"BookRestaurant\""), "{msg}");
    assert_eq!(skills.current("intents").unwrap().0.manifest.version, 1);
    // A version that failed its health check never served: it does not burn its number, and
    // the publisher ships the fixed file as version 2.
    assert_eq!(skills.trust().accepted().unwrap()["intents"].version, 1);
    let r = skills
        .install_checked(&rt, &signed(&manifest(2)), now)
        .unwrap();
    assert_eq!((r.version, r.previous), (2, Some(1)));
    assert_eq!(live.reload(&skills, &rt).unwrap(), 2);
    // A request that took the old version before the swap still finishes on it.
    let a = in_flight
        .handle("play music by the beatles on spotify")
        .unwrap();
    assert_eq!(a.response.intent, "PlayMusic");
    assert_eq!(
        live.get()
            .handle("will it rain tomorrow in paris")
            .unwrap()
            .response
            .intent,
        "GetWeather"
    );

    // A first install that fails its health check is removed again.
    let mut lone = broken.clone();
    lone.name = "lonely".into();
    let err = skills
        .install_checked(&rt, &signed(&lone), now)
        .unwrap_err();
    assert!(err.to_string().contains("removed it"), "{err}");
    assert!(skills.state("lonely").unwrap().is_none());
}

#[test]
fn a_live_skill_swaps_versions_without_dropping_requests() {
    let index = tiny_index();
    let dir = TempDir::new("live");
    default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    let rt = runtime();
    let signed_v = |version| {
        let mut m = dev::intents_manifest(DEFAULT_ENCODER, index, version);
        m.publisher = "acme".into();
        signed(&m)
    };
    skills.install(&signed_v(1), unix_now()).unwrap();
    let live = LiveSkill::open(&skills, &rt, "intents").unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let skill = live.get();
                    let a = skill
                        .handle("what is the weather forecast for london")
                        .unwrap();
                    assert_eq!(a.response.intent, "GetWeather");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for version in 2..=4 {
            skills.install(&signed_v(version), unix_now()).unwrap();
            assert_eq!(live.reload(&skills, &rt).unwrap(), version);
            std::thread::sleep(Duration::from_millis(100));
        }
        skills.rollback("intents").unwrap();
        assert!(live.refresh(&skills, &rt).unwrap());
        assert_eq!(live.version(), 3);
        assert!(!live.refresh(&skills, &rt).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        done.store(true, Ordering::Relaxed);
    });
    assert!(answered.load(Ordering::Relaxed) >= 4);
}

#[test]
fn the_build_signs_the_bundled_skill_with_the_dev_key() {
    let dir = TempDir::new("devkey");
    let trust = TrustStore::at(&dir.0).unwrap();
    let file = edgenlu::bundled::components::SKILL_INTENTS_DEV_SIGNED.bytes;
    // Not trusted by default ...
    assert!(matches!(
        trust.verify(file, unix_now()),
        Err(TrustError::UnknownKey { .. })
    ));
    // ... only after `trust add --dev`; and the manifest the build signed is the one of the
    // host's defaults.
    dev::trust_dev(&trust, unix_now()).unwrap();
    let v = trust.verify(file, unix_now()).unwrap();
    assert_eq!(
        v.manifest,
        dev::intents_manifest(DEFAULT_ENCODER, edgenlu::bundled::DEFAULT_INDEX, 1)
    );
    assert_eq!(
        skillfile::strip(file).unwrap(),
        edgenlu::bundled::components::SKILL_INTENTS.bytes
    );
}

#[test]
fn an_install_killed_before_its_health_check_is_checked_on_the_next_load() {
    let index = tiny_index();
    let dir = TempDir::new("pending");
    default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    let rt = runtime();
    let manifest = |version| {
        let mut m = dev::intents_manifest(DEFAULT_ENCODER, index, version);
        m.publisher = "acme".into();
        m
    };
    skills
        .install_checked(&rt, &signed(&manifest(1)), unix_now())
        .unwrap();
    // What a kill between the switch and the health check's result leaves: version 2
    // current but marked unchecked (written here by hand, as install_checked writes it).
    let mut broken = manifest(2);
    broken.health[1].intent = "RateBook".into();
    skills.install(&signed(&broken), unix_now()).unwrap();
    let path = dir.0.join("skills/intents/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["unchecked"] = true.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert!(skills.state("intents").unwrap().unwrap().unchecked);

    // The next load finishes the check, rolls back, and serves version 1.
    let (v, skill) = skills.load(&rt, "intents").unwrap();
    assert_eq!(v.manifest.version, 1);
    let s = skills.state("intents").unwrap().unwrap();
    assert!(!s.unchecked && s.current.version == 1 && s.previous.is_none());
    assert_eq!(
        skill
            .handle("what is the weather forecast for london")
            .unwrap()
            .response
            .intent,
        "GetWeather"
    );
    // A good unchecked version passes its check on load and stays.
    skills.install(&signed(&manifest(3)), unix_now()).unwrap();
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["unchecked"] = true.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(skills.recover(&rt, "intents").unwrap(), None);
    let s = skills.state("intents").unwrap().unwrap();
    assert!(!s.unchecked && s.current.version == 3);
}

/// The manifest grants a skill exactly its models: one it does not name stays closed.
#[test]
fn manifest_grants_are_what_the_skill_gets() {
    let index = tiny_index();
    let m = dev::intents_manifest(DEFAULT_ENCODER, index, 1);
    let spec = m.skill_spec(Path::new("x.wasm"));
    assert_eq!(spec.skill.grants.models, vec![DEFAULT_ENCODER, index]);
    assert_eq!(
        spec.tokenizer.unwrap().grants.models,
        vec![DEFAULT_ENCODER.to_string()]
    );
    let mut m = m;
    m.budgets.deadline_ms = Some(1234);
    m.budgets.memory_mib = Some(32);
    m.budgets.host_memory_mib = Some(48);
    m.budgets.handles = Some(99);
    m.budgets.max_response_kib = Some(3);
    m.budgets.max_tokens = Some(77);
    let l = m.limits();
    assert_eq!(l.deadline, Duration::from_millis(1234));
    assert_eq!(l.guest_memory, 32 << 20);
    assert_eq!(l.host_memory, 48 << 20);
    assert_eq!(l.handles, 99);
    assert_eq!(l.max_response_bytes, 3 << 10);
    assert_eq!(l.max_tokens, 77);

    // The budgets reach the running skill: a 1 ms deadline stops every request.
    let dir = TempDir::new("budgets");
    default_trust(&dir.0);
    let skills = SkillStore::at(&dir.0).unwrap();
    let mut m = dev::intents_manifest(DEFAULT_ENCODER, index, 1);
    m.publisher = "acme".into();
    m.budgets.deadline_ms = Some(1);
    skills.install(&signed(&m), unix_now()).unwrap();
    let (_, skill) = skills.load(&runtime(), "intents").unwrap();
    let err = skill
        .handle("what is the weather forecast for london")
        .unwrap_err();
    assert!(matches!(err, edgenlu::SkillError::Deadline(1)), "{err}");
}

// ---- crash and full-disk tests: a child process (this test binary, re-run) installs ----

const CHILD_ROOT: &str = "EDGENLU_TRUST_CHILD_ROOT";
const CHILD_FILE: &str = "EDGENLU_TRUST_CHILD_FILE";
const CHILD_FSIZE: &str = "EDGENLU_TRUST_CHILD_FSIZE";
/// Set: the child installs with the health check (`install_checked`).
const CHILD_CHECKED: &str = "EDGENLU_TRUST_CHILD_CHECKED";

fn child(root: &Path, file: &Path) -> Command {
    // The child is a program of its own (tests/src/bin/trust_child_install.rs).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trust_child_install"));
    cmd.env(CHILD_ROOT, root)
        .env(CHILD_FILE, file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A store with version 1 installed (pristine, copied for each run) and version 2's file.
fn crash_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let pristine = dir.join("pristine");
    default_trust(&pristine);
    SkillStore::at(&pristine)
        .unwrap()
        .install(&signed(&acme_manifest(1)), unix_now())
        .unwrap();
    let file = dir.join("v2.wasm");
    std::fs::write(&file, signed(&acme_manifest(2))).unwrap();
    (pristine, file)
}

#[test]
fn kill_9_during_a_failing_health_check_always_ends_on_the_old_version() {
    let runs: usize = std::env::var("EDGENLU_KILL_CHECKED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let index = tiny_index();
    let dir = TempDir::new("killcheck");
    let manifest = |version| {
        let mut m = dev::intents_manifest(DEFAULT_ENCODER, index, version);
        m.publisher = "acme".into();
        m
    };
    let pristine = dir.0.join("pristine");
    default_trust(&pristine);
    let rt = runtime();
    SkillStore::at(&pristine)
        .unwrap()
        .install_checked(&rt, &signed(&manifest(1)), unix_now())
        .unwrap();
    let mut broken = manifest(2);
    broken.health[2].intent = "SearchCreativeWork".into();
    let file = dir.0.join("v2-broken.wasm");
    std::fs::write(&file, signed(&broken)).unwrap();
    let work = dir.0.join("work");
    let spawn = || {
        let mut c = child(&work, &file).env(CHILD_CHECKED, "1").spawn().unwrap();
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("INSTALLING") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(n > 0, "the child never started");
        }
        // Keep the pipe open: a closed one would kill the child on its next line.
        (c, out, Instant::now())
    };

    // An uninterrupted run: the health check fails and the child reports the rollback.
    copy_dir(&pristine, &work);
    let (mut c, mut out, start) = spawn();
    let status = c.wait().unwrap();
    let full = start.elapsed();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(status.code(), Some(3), "{rest}");
    assert!(rest.contains("rolled back to version 1"), "{rest}");

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut unchecked_found = 0;
    for run in 0..runs {
        std::fs::remove_dir_all(&work).unwrap();
        copy_dir(&pristine, &work);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 + 1));
        let (mut c, _out, _) = spawn();
        std::thread::sleep(delay);
        let _ = c.kill();
        c.wait().unwrap();
        let skills = SkillStore::at(&work).unwrap();
        unchecked_found += skills
            .state("intents")
            .unwrap()
            .is_some_and(|s| s.unchecked) as usize;
        let (v, _) = skills
            .load(&rt, "intents")
            .unwrap_or_else(|e| panic!("run {run}: after a kill at {delay:?} nothing loads: {e}"));
        assert_eq!(v.manifest.version, 1, "run {run}: kill at {delay:?}");
        assert!(!skills.state("intents").unwrap().unwrap().unchecked);
    }
    eprintln!(
        "{runs} kills over a {full:?} checked install; {unchecked_found} left version 2 \
         unchecked, and every load ended on version 1"
    );
    assert!(
        unchecked_found > 0,
        "no kill landed during the health check"
    );
}

#[test]
fn kill_9_at_any_instant_of_install_leaves_old_or_new() {
    let runs: usize = std::env::var("EDGENLU_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = TempDir::new("kill");
    let (pristine, file) = crash_fixture(&dir.0);
    let work = dir.0.join("work");

    // Runs one child; after it says INSTALLING, waits `delay` (None: until it exits) and
    // kills it. Returns the time from INSTALLING to the kill or exit, whether it was killed,
    // and whether it had said INSTALLED.
    let run_child = |delay: Option<Duration>| {
        use std::io::{BufRead, Read};
        let mut c = child(&work, &file).spawn().unwrap();
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("INSTALLING") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the child never started"
            );
        }
        let start = Instant::now();
        let mut killed = false;
        let mut elapsed = Duration::ZERO;
        match delay {
            Some(d) => {
                std::thread::sleep(d);
                if c.try_wait().unwrap().is_none() {
                    c.kill().unwrap(); // SIGKILL on Unix
                    killed = true;
                }
            }
            None => {
                // Calibration: the time to INSTALLED, not to the exit (libtest's teardown).
                while !line.contains("INSTALLED") {
                    line.clear();
                    assert!(out.read_line(&mut line).unwrap() > 0, "no INSTALLED");
                }
                elapsed = start.elapsed();
            }
        }
        c.wait().unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        (
            elapsed,
            killed,
            line.contains("INSTALLED") || rest.contains("INSTALLED"),
        )
    };

    // How long an uninterrupted install takes (the median of 5; fsync times vary), so kills
    // spread over all of it.
    let mut times = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&pristine, &work);
        let (t, _, done) = run_child(None);
        assert!(done);
        times.push(t);
    }
    times.sort();
    let full = times[2];
    assert_eq!(
        SkillStore::at(&work)
            .unwrap()
            .current("intents")
            .unwrap()
            .0
            .manifest
            .version,
        2
    );

    let mut seed = 0x2545f4914f6cdd1du64;
    let (mut old, mut new, mut killed_mid_install) = (0, 0, 0);
    for run in 0..runs {
        std::fs::remove_dir_all(&work).unwrap();
        copy_dir(&pristine, &work);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 * 6 / 5 + 1));
        let (_, killed, installed) = run_child(Some(delay));
        killed_mid_install += (killed && !installed) as usize;
        let skills = SkillStore::at(&work).unwrap();
        let (v, _) = skills.current("intents").unwrap_or_else(|e| {
            panic!("run {run}: after a kill at {delay:?} the store loads nothing: {e}")
        });
        match v.manifest.version {
            1 if !installed => old += 1,
            2 => new += 1,
            other => {
                panic!("run {run}: version {other} after the install said INSTALLED={installed}")
            }
        }
        // Whatever survived, the store still takes the new version afterwards.
        skills
            .install(&std::fs::read(&file).unwrap(), unix_now())
            .unwrap();
        assert_eq!(skills.current("intents").unwrap().0.manifest.version, 2);
    }
    eprintln!(
        "{runs} runs, install takes {full:?}; {killed_mid_install} killed mid-install; \
         afterwards {old} loaded the old version, {new} the new one"
    );
    assert!(
        killed_mid_install >= runs / 4 && old > 0 && new > 0,
        "kills did not land inside installs often enough"
    );
}

#[test]
fn a_full_disk_during_install_keeps_the_old_version() {
    let dir = TempDir::new("fsize");
    let (pristine, file) = crash_fixture(&dir.0);
    let size = std::fs::metadata(&file).unwrap().len();
    let out = child(&pristine, &file)
        .env(CHILD_FSIZE, (size / 2).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("File too large"), "{stdout}");
    let skills = SkillStore::at(&pristine).unwrap();
    assert_eq!(skills.current("intents").unwrap().0.manifest.version, 1);
    let leftovers: Vec<_> = std::fs::read_dir(pristine.join("skills/intents"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}
