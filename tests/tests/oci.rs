//! [fleet]: skills and models through a real OCI registry (Debian's `docker-registry`, CNCF
//! distribution 2.8, started on loopback by each test). Push → pull → install on a fresh store
//! for a skill and for a model, through the built `edgenlu`; and every refusal — a tampered
//! blob, a wrong-key signature, an older version, a download that keeps breaking off — typed,
//! with the store's files (sizes and SHA-256) the same before and after. A download cut off
//! twice resumes with range requests and installs; credentials come from the Docker config
//! file; forged manifests (wrong sizes, another file's signature) are refused.

use edgenlu_device::installed::ProbeCheck;
use edgenlu_fleet::client::RegistryClient;
use edgenlu_fleet::pull::{pull, PullOptions, Pulled};
use edgenlu_fleet::push::{push_model, push_skill};
use edgenlu_fleet::reference::ArtifactRef;
use edgenlu_fleet::FleetError;
use edgenlu_models::store::{Import, ModelStore};
use edgenlu_tests::{
    acme_skill, edgenlu_in, fresh_device, require_model, runtime_over, store, temp_store,
    test_key as key, tiny_index, tree_listing, trust_acme, Cut, CuttingProxy, Registry,
};
use edgenlu_trust::models::ModelSignature;
use edgenlu_trust::store::TrustStore;
use edgenlu_trust::{unix_now, TrustError};
use std::path::{Path, PathBuf};

/// The model the model tests push and pull (25 MiB: big enough to be cut off mid-blob).
const MODEL: &str = "all-minilm-l6-v2.q8_0";

/// An empty device store (no model linked), acme trusted: where a model is pulled for real.
fn empty_device(tag: &str) -> ModelStore {
    let root = std::env::temp_dir()
        .join("edgenlu-tests")
        .join(format!("{tag}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let device = ModelStore::at(&root).unwrap();
    trust_acme(device.root());
    device
}

/// A client for `reference` (loopback: plain HTTP).
fn client(reference: &str) -> RegistryClient {
    RegistryClient::new(ArtifactRef::parse(reference, false).unwrap()).unwrap()
}

/// Pulls `reference` into `device` with the runtime's health check, as `edgenlu pull` does.
fn pull_into(device: &ModelStore, reference: &str) -> Result<Pulled, FleetError> {
    let rt = runtime_over(device.clone());
    let probes = ProbeCheck(&rt);
    pull(
        &client(reference),
        device,
        PullOptions {
            health: Some(&probes),
            flow_health: None,
            expect: None,
            force: false,
            now: unix_now(),
        },
    )
}

/// Pulls `reference` into `device`, which must refuse it; returns the error after checking
/// that the store's files are exactly what they were and no temporary is left.
fn refused(device: &ModelStore, reference: &str) -> FleetError {
    let before = tree_listing(device.root());
    let err = pull_into(device, reference).expect_err("the pull must be refused");
    eprintln!("refused as expected: {err}");
    assert_eq!(
        tree_listing(device.root()),
        before,
        "a refused pull changed the store"
    );
    err
}

/// The model's GGUF in the real store and a signature of it by `signer`, written into `dir`.
fn signed_model(dir: &Path, signer: u8) -> (PathBuf, PathBuf, ModelSignature) {
    require_model(MODEL);
    let gguf = store().path_for(MODEL).unwrap();
    let entry = store().verify(MODEL).unwrap();
    let sig = ModelSignature::sign(MODEL, &entry.sha256, &key(signer));
    std::fs::create_dir_all(dir).unwrap();
    let sig_file = dir.join(format!("{MODEL}.sig.{signer}.json"));
    std::fs::write(&sig_file, serde_json::to_vec_pretty(&sig).unwrap()).unwrap();
    (gguf, sig_file, sig)
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("edgenlu-tests")
        .join(format!("oci-{tag}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    edgenlu_trust::to_hex(&sha2::Sha256::digest(bytes))
}

#[test]
fn a_skill_pushed_is_pulled_and_installed_on_a_fresh_store() {
    let registry = Registry::start();
    let dir = scratch_dir("skill");
    let file = dir.join("intents-1.wasm");
    let bytes = acme_skill(1, 2);
    std::fs::write(&file, &bytes).unwrap();
    let reference = format!("{}/acme/intents:1", registry.host());

    let publisher = temp_store("oci-publisher");
    let pushed = edgenlu_in(&publisher, &["push", file.to_str().unwrap(), &reference]);
    assert!(pushed.ok, "push failed: {}", pushed.stderr);
    assert!(
        pushed.stdout.starts_with(&format!(
            "pushed skill intents version 1 ({} bytes) to {}/acme/intents:1@sha256:",
            bytes.len(),
            registry.host()
        )),
        "{}",
        pushed.stdout
    );

    // The artifact is the CNCF Wasm layout with the file unchanged as its one layer.
    let manifest = registry.manifest("acme/intents", "1");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        manifest["layers"][0]["digest"],
        format!("sha256:{}", sha256_hex(&bytes))
    );
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.title"], "intents");
    assert_eq!(annotations["org.opencontainers.image.version"], "1");
    assert!(annotations["org.opencontainers.image.created"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let device = fresh_device("oci-skill-device");
    let pulled = edgenlu_in(&device, &["pull", &reference]);
    assert!(pulled.ok, "pull failed: {}", pulled.stderr);
    assert!(
        pulled.stdout.starts_with(&format!(
            "installed skill intents version 1 from {}/acme/intents:1@sha256:",
            registry.host()
        )) && pulled.stdout.contains("health check passed (3 probes)"),
        "{}",
        pulled.stdout
    );
    let skills = edgenlu_trust::skills::SkillStore::at(device.root()).unwrap();
    let state = skills.state("intents").unwrap().expect("installed");
    assert_eq!(state.current.version, 1);
    assert_eq!(state.current.sha256, sha256_hex(&bytes));
    let asked = edgenlu_in(
        &device,
        &["ask", "intents", "play some jazz by miles davis"],
    );
    assert!(
        asked.ok && asked.stdout.contains("PlayMusic"),
        "{}",
        asked.stdout
    );
    assert!(
        std::fs::read_dir(device.root().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "the download left a temporary file"
    );
}

#[test]
fn a_model_pushed_is_pulled_and_installed_on_a_fresh_store() {
    let registry = Registry::start();
    let dir = scratch_dir("model");
    let (gguf, sig_file, sig) = signed_model(&dir, 2);
    let reference = format!("{}/acme/minilm:1", registry.host());
    let publisher = temp_store("oci-model-publisher");
    let pushed = edgenlu_in(
        &publisher,
        &[
            "push",
            gguf.to_str().unwrap(),
            &reference,
            "--signature",
            sig_file.to_str().unwrap(),
        ],
    );
    assert!(pushed.ok, "push failed: {}", pushed.stderr);
    let size = std::fs::metadata(&gguf).unwrap().len();
    assert!(
        pushed.stdout.starts_with(&format!(
            "pushed model {MODEL} version {} ({size} bytes) to {reference}@sha256:",
            &sig.sha256[..12]
        )),
        "{}",
        pushed.stdout
    );
    let manifest = registry.manifest("acme/minilm", "1");
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.cncf.model.weight.v1.raw"
    );
    assert_eq!(
        manifest["layers"][0]["digest"],
        format!("sha256:{}", sig.sha256)
    );
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.edgenlu.model.signature.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        MODEL
    );

    let device = empty_device("oci-model-device");
    let pulled = edgenlu_in(&device, &["pull", &reference]);
    assert!(pulled.ok, "pull failed: {}", pulled.stderr);
    assert_eq!(
        pulled.stdout.trim(),
        format!(
            "installed model {MODEL} sha256 {} ({size} bytes) from {reference}@{}, signed by acme",
            sig.sha256,
            pushed.stdout.trim().rsplit_once('@').unwrap().1
        )
    );
    // In the store with the signed digest, its signature trusted; nothing left in tmp/.
    assert_eq!(device.verify(MODEL).unwrap().sha256, sig.sha256);
    let trust = TrustStore::at(device.root()).unwrap();
    assert_eq!(trust.model_signature(MODEL).unwrap(), Some(sig.clone()));
    trust.check_model(MODEL, Some(&sig.sha256)).unwrap();
    assert!(std::fs::read_dir(device.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());

    // Pulled again, by digest: the store has exactly this file, so nothing is downloaded.
    let digest = pushed.stdout.trim().rsplit_once('@').unwrap().1.to_string();
    let by_digest = format!("{}/acme/minilm@{digest}", registry.host());
    let again = edgenlu_in(&device, &["pull", &by_digest]);
    assert!(
        again.ok
            && again
                .stdout
                .starts_with(&format!("already had model {MODEL}")),
        "{}",
        again.stdout
    );
}

#[test]
fn a_tampered_blob_is_refused_and_the_store_is_unchanged() {
    let registry = Registry::start();
    let bytes = acme_skill(1, 2);
    let reference = format!("{}/acme/intents:1", registry.host());
    push_skill(&client(&reference), &bytes).unwrap();
    // One byte of the stored skill file flipped in the registry's own storage, size kept.
    let blob = registry.blob_file(&format!("sha256:{}", sha256_hex(&bytes)));
    let mut stored = std::fs::read(&blob).unwrap();
    let middle = stored.len() / 2;
    stored[middle] ^= 0x40;
    std::fs::write(&blob, &stored).unwrap();

    let device = fresh_device("oci-tampered-device");
    let err = refused(&device, &reference);
    assert!(
        matches!(&err, FleetError::DigestMismatch { expected, .. } if expected.ends_with(&sha256_hex(&bytes))),
        "{err}"
    );
    assert!(edgenlu_trust::skills::SkillStore::at(device.root())
        .unwrap()
        .state("intents")
        .unwrap()
        .is_none());
}

#[test]
fn a_tampered_model_blob_is_refused_and_the_store_is_unchanged() {
    let registry = Registry::start();
    let (gguf, _, sig) = signed_model(&scratch_dir("tampered-model"), 2);
    let reference = format!("{}/acme/minilm:1", registry.host());
    push_model(&client(&reference), &gguf, &sig).unwrap();
    let blob = registry.blob_file(&format!("sha256:{}", sig.sha256));
    let mut stored = std::fs::read(&blob).unwrap();
    let last = stored.len() - 1;
    stored[last] ^= 1;
    std::fs::write(&blob, &stored).unwrap();

    let device = empty_device("oci-tampered-model-device");
    let err = refused(&device, &reference);
    assert!(matches!(err, FleetError::DigestMismatch { .. }), "{err}");
    assert!(device.entry(MODEL).unwrap().is_none());
}

#[test]
fn a_skill_signed_by_an_unknown_key_is_refused() {
    let registry = Registry::start();
    let reference = format!("{}/acme/intents:1", registry.host());
    push_skill(&client(&reference), &acme_skill(1, 3)).unwrap();
    let device = fresh_device("oci-wrong-key-device");
    let err = refused(&device, &reference);
    assert!(
        matches!(err.trust_error(), Some(TrustError::UnknownKey { .. })),
        "{err}"
    );
}

#[test]
fn a_model_signed_by_an_unknown_key_is_refused_before_it_is_downloaded() {
    let registry = Registry::start();
    let (gguf, _, sig) = signed_model(&scratch_dir("wrong-key-model"), 3);
    let reference = format!("{}/acme/minilm:1", registry.host());
    push_model(&client(&reference), &gguf, &sig).unwrap();
    let device = empty_device("oci-wrong-key-model-device");
    let err = refused(&device, &reference);
    assert!(
        matches!(err.trust_error(), Some(TrustError::BadModelSignature(_))),
        "{err}"
    );
}

#[test]
fn an_older_version_is_refused_as_a_rollback() {
    let registry = Registry::start();
    let host = registry.host();
    push_skill(
        &client(&format!("{host}/acme/intents:2")),
        &acme_skill(2, 2),
    )
    .unwrap();
    push_skill(
        &client(&format!("{host}/acme/intents:1")),
        &acme_skill(1, 2),
    )
    .unwrap();
    let device = fresh_device("oci-rollback-device");
    match pull_into(&device, &format!("{host}/acme/intents:2")).unwrap() {
        Pulled::Skill { report, .. } => assert_eq!(report.version, 2),
        other => panic!("expected a skill, got {other:?}"),
    }
    let err = refused(&device, &format!("{host}/acme/intents:1"));
    assert!(
        matches!(
            err.trust_error(),
            Some(TrustError::Rollback {
                version: 1,
                highest: 2,
                ..
            })
        ),
        "{err}"
    );
}

/// The model pushed to a new registry as `acme/minilm:1`, and a proxy in front of the
/// registry cutting blob downloads off after 1 MiB `times` times (None: always). Returns the
/// registry (to keep it running), the proxy, the model's GGUF and its signature.
fn model_behind_cutting_proxy(
    tag: &str,
    times: Option<usize>,
) -> (Registry, CuttingProxy, PathBuf, ModelSignature) {
    let registry = Registry::start();
    let (gguf, _, sig) = signed_model(&scratch_dir(tag), 2);
    let reference = format!("{}/acme/minilm:1", registry.host());
    push_model(&client(&reference), &gguf, &sig).unwrap();
    let cut = Cut {
        after_bytes: 1 << 20,
        times,
    };
    let proxy = CuttingProxy::start(registry.addr(), cut);
    (registry, proxy, gguf, sig)
}

#[test]
fn a_download_cut_off_twice_resumes_and_installs() {
    let (_registry, proxy, gguf, sig) = model_behind_cutting_proxy("resume", Some(2));
    let device = empty_device("oci-resume-device");
    let pulled = pull_into(&device, &format!("{}/acme/minilm:1", proxy.host())).unwrap();
    assert_eq!(
        proxy.cuts(),
        2,
        "the proxy did not cut the download off twice"
    );
    // Resumed where each cut left off (range requests), not started over: every byte of the
    // model and its signature passed the proxy once.
    let size = std::fs::metadata(&gguf).unwrap().len() as usize;
    assert!(
        proxy.blob_bytes() < size + (64 << 10),
        "{} bytes passed for a {size}-byte model: the download started over",
        proxy.blob_bytes()
    );
    match pulled {
        Pulled::Model {
            entry, downloaded, ..
        } => {
            assert!(downloaded);
            assert_eq!(entry.sha256, sig.sha256);
        }
        other => panic!("expected a model, got {other:?}"),
    }
    assert_eq!(device.verify(MODEL).unwrap().sha256, sig.sha256);
    assert!(std::fs::read_dir(device.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_download_that_always_breaks_off_is_refused_typed() {
    let (_registry, proxy, _, _) = model_behind_cutting_proxy("truncated", None);
    let device = empty_device("oci-truncated-device");
    let err = refused(&device, &format!("{}/acme/minilm:1", proxy.host()));
    match err {
        FleetError::Interrupted {
            attempts,
            received,
            declared,
            ..
        } => {
            assert_eq!(attempts, 5);
            assert!(received < declared, "{received} of {declared}");
        }
        other => panic!("expected an interrupted transfer, got {other}"),
    }
    assert!(device.entry(MODEL).unwrap().is_none());
}

#[test]
fn a_registry_that_is_down_is_a_typed_error_and_a_restarted_one_serves_again() {
    let mut registry = Registry::start();
    let reference = format!("{}/acme/intents:1", registry.host());
    push_skill(&client(&reference), &acme_skill(1, 2)).unwrap();
    let device = fresh_device("oci-down-device");
    registry.stop();
    let err = refused(&device, &reference);
    assert!(matches!(err, FleetError::Registry { .. }), "{err}");
    // Same port, same storage: the artifact pushed before the crash is there.
    registry.restart();
    match pull_into(&device, &reference).unwrap() {
        Pulled::Skill { report, .. } => {
            assert_eq!((report.name.as_str(), report.version), ("intents", 1))
        }
        other => panic!("expected a skill, got {other:?}"),
    }
}

/// The registry's user: `acme`, password `s3cret` as a bcrypt hash (cost 4, made with
/// libxcrypt's `crypt`): test data, not a secret.
const USERS: &str = "acme:$2b$04$OqgTZapUYA80mwAeBzdziOWayT.Du5yFs6GbFK54zKau/W/iYxGu2\n";

/// Standard base64 with padding, as Docker's config file stores `user:password`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

/// A Docker config directory whose `config.json` logs `user:password` in to `registry`.
fn docker_config(tag: &str, registry: &str, user: &str, password: &str) -> PathBuf {
    let dir = scratch_dir(tag);
    let auth = base64(format!("{user}:{password}").as_bytes());
    let config = serde_json::json!({ "auths": { registry: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn credentials_come_from_the_docker_config_file() {
    assert_eq!(base64(b"acme:s3cret"), "YWNtZTpzM2NyZXQ=");
    let registry = Registry::start_with_users(USERS);
    let dir = scratch_dir("auth");
    let file = dir.join("intents-1.wasm");
    std::fs::write(&file, acme_skill(1, 2)).unwrap();
    let reference = format!("{}/acme/intents:1", registry.host());
    let publisher = temp_store("oci-auth-publisher");
    let push = |config: &Path| {
        let env = [("DOCKER_CONFIG", config)];
        edgenlu_tests::edgenlu_in_env(
            &publisher,
            &env,
            &["push", file.to_str().unwrap(), &reference],
        )
    };
    let anonymous = push(&scratch_dir("auth-none"));
    assert!(
        !anonymous.ok && anonymous.stderr.contains("401 Unauthorized"),
        "an anonymous push was not refused by the registry: {}",
        anonymous.stderr
    );
    let wrong = push(&docker_config(
        "auth-wrong",
        &registry.host(),
        "acme",
        "guess",
    ));
    assert!(
        !wrong.ok && wrong.stderr.contains("401 Unauthorized"),
        "a push with a wrong password was not refused by the registry: {}",
        wrong.stderr
    );
    let logged_in = docker_config("auth-right", &registry.host(), "acme", "s3cret");
    let pushed = push(&logged_in);
    assert!(pushed.ok, "{}", pushed.stderr);

    let device = fresh_device("oci-auth-device");
    let env = [("DOCKER_CONFIG", logged_in.as_path())];
    let pulled = edgenlu_tests::edgenlu_in_env(&device, &env, &["pull", &reference]);
    assert!(
        pulled.ok
            && pulled
                .stdout
                .starts_with("installed skill intents version 1"),
        "{}",
        pulled.stderr
    );
}

#[test]
fn a_blob_larger_than_its_manifest_declares_is_refused() {
    let registry = Registry::start();
    let bytes = acme_skill(1, 2);
    push_skill(
        &client(&format!("{}/acme/intents:1", registry.host())),
        &bytes,
    )
    .unwrap();
    let honest = registry.manifest("acme/intents", "1");
    let with_size = |size: u64| {
        let mut m = honest.clone();
        m["layers"][0]["size"] = size.into();
        m
    };
    // The registry stores what it is given: manifests no honest client writes.
    let declared = bytes.len() as u64 - 100;
    registry.put_manifest("acme/intents", "short", &with_size(declared));
    registry.put_manifest("acme/intents", "huge", &with_size(1 << 40));
    let device = fresh_device("oci-sizes-device");
    let err = refused(&device, &format!("{}/acme/intents:short", registry.host()));
    assert!(
        matches!(err, FleetError::TooLarge { declared: d, .. } if d == declared),
        "{err}"
    );
    let err = refused(&device, &format!("{}/acme/intents:huge", registry.host()));
    assert!(
        matches!(err, FleetError::DeclaredTooLarge { declared, .. } if declared == 1 << 40),
        "{err}"
    );
}

#[test]
fn a_signature_of_another_file_is_refused_at_push_and_at_pull() {
    let registry = Registry::start();
    let (gguf, _, sig) = signed_model(&scratch_dir("other-file"), 2);
    let index = tiny_index();
    let index_file = store().path_for(index).unwrap();
    let index_sig = ModelSignature::sign(index, &store().verify(index).unwrap().sha256, &key(2));
    let host = registry.host();
    // Push refuses a GGUF with the signature of another file.
    let err = push_model(&client(&format!("{host}/acme/models:x")), &gguf, &index_sig).unwrap_err();
    assert!(matches!(err, FleetError::SignatureMismatch { .. }), "{err}");
    // A manifest pairing the model with another file's (valid) signature is refused at pull,
    // before the model is downloaded. (One repository: the registry links blobs per repository.)
    push_model(&client(&format!("{host}/acme/models:minilm")), &gguf, &sig).unwrap();
    push_model(
        &client(&format!("{host}/acme/models:index")),
        &index_file,
        &index_sig,
    )
    .unwrap();
    let mut forged = registry.manifest("acme/models", "minilm");
    forged["layers"][1] = registry.manifest("acme/models", "index")["layers"][1].clone();
    registry.put_manifest("acme/models", "forged", &forged);
    let device = empty_device("oci-other-file-device");
    let err = refused(&device, &format!("{host}/acme/models:forged"));
    assert!(matches!(err, FleetError::SignatureMismatch { .. }), "{err}");
}

#[test]
fn a_manifest_that_never_ends_is_refused_at_its_bound() {
    let server = edgenlu_tests::endless_manifest_server();
    let device = empty_device("oci-endless-device");
    let err = refused(&device, &format!("{server}/acme/intents:1"));
    assert!(
        matches!(err, FleetError::ManifestTooLarge { limit, .. } if limit == edgenlu_fleet::client::MAX_MANIFEST_BYTES),
        "{err}"
    );
}

#[test]
fn a_model_of_that_name_with_other_content_is_replaced_only_with_force() {
    let registry = Registry::start();
    let (gguf, _, sig) = signed_model(&scratch_dir("force"), 2);
    let reference = format!("{}/acme/minilm:1", registry.host());
    push_model(&client(&reference), &gguf, &sig).unwrap();
    // The device holds another model under that name (the f32 encoder's file).
    require_model("all-minilm-l6-v2.f32");
    let device = empty_device("oci-force-device");
    let other = store().path_for("all-minilm-l6-v2.f32").unwrap();
    let import = Import {
        replace: None,
        take_file: false,
        source: "edgenlu-tests",
    };
    device.import_file(MODEL, &other, import).unwrap();
    let err = refused(&device, &reference);
    assert!(
        matches!(
            err,
            FleetError::Store(edgenlu_models::store::StoreError::Exists { .. })
        ),
        "{err}"
    );
    let forced = pull(
        &client(&reference),
        &device,
        PullOptions {
            health: None,
            flow_health: None,
            expect: None,
            force: true,
            now: unix_now(),
        },
    )
    .unwrap();
    assert!(
        matches!(
            forced,
            Pulled::Model {
                downloaded: true,
                ..
            }
        ),
        "{forced:?}"
    );
    assert_eq!(device.verify(MODEL).unwrap().sha256, sig.sha256);
}
