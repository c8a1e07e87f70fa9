//! The CLI's trust and skill-store commands ([trust]): keys, signing, verifying, the device's
//! trust store, and installing, listing, rolling back and removing skills. Wired into
//! `main.rs` as one flattened variant, so these are top-level commands (`edgenlu install`).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use edgenlu::Runtime;
use edgenlu_device::installed::InstalledSkills;
use edgenlu_models::store::ModelStore;
use edgenlu_trust::keys::{self, PublicKeyFile};
use edgenlu_trust::manifest::{Capability, Kind, Manifest};
use edgenlu_trust::models::ModelSignature;
use edgenlu_trust::skillfile::{self, MANIFEST_SECTION, SIGNATURE_SECTION};
use edgenlu_trust::skills::{SkillState, SkillStore};
use edgenlu_trust::store::{Delegation, SignedDelegation, TrustStore, Verified};
use edgenlu_trust::{days_after, dev, unix_now, DAY_SECONDS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Trust and skill-store commands.
#[derive(Subcommand)]
pub enum TrustCli {
    /// Generate an ed25519 key pair: NAME.key (secret, mode 0600) and NAME.pub.
    ///
    /// Example: edgenlu keygen acme --dir keys/
    Keygen {
        /// Name of the key (a vendor root or a publisher).
        name: String,
        /// Directory to write the two files into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Sign a component with a manifest: appends the edgenlu-manifest and edgenlu-signature
    /// sections (any earlier ones are replaced).
    ///
    /// Example: edgenlu sign skill.wasm --manifest manifest.json --key keys/acme.key -o skill.signed.wasm
    /// Example (the bundled intents skill, development key): edgenlu sign --dev-intents -o intents.wasm
    Sign {
        /// The component (.wasm); omit with --dev-intents.
        #[arg(required_unless_present = "dev_intents")]
        component: Option<PathBuf>,
        /// The manifest, JSON (see README "Trust").
        #[arg(long, required_unless_present = "dev_intents")]
        manifest: Option<PathBuf>,
        /// The publisher's secret key file.
        #[arg(long, required_unless_present = "dev_intents")]
        key: Option<PathBuf>,
        /// Sign the bundled intents skill with the public development key instead.
        #[arg(long, conflicts_with_all = ["component", "manifest", "key"])]
        dev_intents: bool,
        #[command(flatten)]
        dev: DevIntents,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Sign a model in the store: a detached signature over its name and SHA-256 digest.
    /// Once a device stores it (`trust add`), skills listing the model load only while the
    /// store's copy has that digest.
    ///
    /// Example: edgenlu sign-model all-minilm-l6-v2.q8_0 --key keys/acme.key -o minilm.sig.json
    SignModel {
        /// The model's store name.
        name: String,
        /// The publisher's secret key file.
        #[arg(long)]
        key: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check a skill file against this device's trust store, as `install` would.
    ///
    /// Example: edgenlu verify intents.wasm
    Verify {
        /// The signed skill file.
        file: PathBuf,
    },
    /// Show a skill file's sections, manifest and signing key, without trusting any of it.
    ///
    /// Example: edgenlu inspect intents.wasm
    Inspect {
        /// The skill file.
        file: PathBuf,
        /// Print only the manifest's JSON (to edit and re-sign).
        #[arg(long)]
        manifest_only: bool,
    },
    /// The device's trust store: pinned roots and publisher delegations.
    #[command(subcommand)]
    Trust(TrustStoreCli),
    /// Verify and install a signed skill, then run its health check; a failing one rolls back.
    /// A file whose manifest says `kind: flow` becomes the device's flow (its probes answered
    /// through the device's skills); the flow before it is kept for `rollback flow`.
    ///
    /// Example: edgenlu install intents.wasm
    Install {
        /// The signed skill (or flow) file.
        file: PathBuf,
        /// Skip the health check (the probes in its manifest).
        #[arg(long)]
        no_health_check: bool,
    },
    /// List installed skills with their current and previous versions, and whether the
    /// current one still verifies (a revoked key or delegation shows as REFUSED, with why).
    ///
    /// Example: edgenlu list --json
    List {
        /// One JSON object per skill, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Make a skill's previous version current again (and the current one previous); for
    /// the device's flow (`flow` or its name), the flow installed before it.
    ///
    /// Example: edgenlu rollback intents
    Rollback {
        /// The skill, or `flow`.
        name: String,
    },
    /// Remove an installed skill (its highest accepted version stays recorded); removing the
    /// device's flow (`flow` or its name) puts the bundled default flow back.
    ///
    /// Example: edgenlu remove intents
    Remove {
        /// The skill, or `flow`.
        name: String,
    },
    /// Answer utterances with an installed skill, under its manifest's grants.
    ///
    /// Example: edgenlu ask intents "play some jazz"
    Ask {
        /// The installed skill.
        name: String,
        /// Utterances.
        #[arg(required = true)]
        texts: Vec<String>,
    },
}

/// Options of `sign --dev-intents`.
#[derive(Args)]
pub struct DevIntents {
    /// Version to put in the manifest (--dev-intents).
    #[arg(long, default_value_t = 1, value_parser = crate::count::<u64>)]
    version: u64,
    /// Encoder model (--dev-intents).
    #[arg(long, default_value = edgenlu::bundled::DEFAULT_ENCODER)]
    encoder: String,
    /// Datastore the skill answers from (--dev-intents).
    #[arg(long, default_value = edgenlu::bundled::DEFAULT_INDEX)]
    index: String,
    /// Days until this release stops being installable (--dev-intents; default: no expiry
    /// of its own).
    #[arg(long, value_parser = crate::count::<u64>)]
    expires_days: Option<u64>,
    /// Pin the encoder's and datastore's digests from this store in the manifest
    /// (--dev-intents): the device must then hold exactly these model files.
    #[arg(long)]
    pin_models: bool,
}

/// `edgenlu trust ...`.
#[derive(Subcommand)]
pub enum TrustStoreCli {
    /// Pin a root key, store a root-signed delegation or a model signature, or trust the
    /// development key.
    ///
    /// Examples: edgenlu trust add --root keys/vendor.pub;
    /// edgenlu trust add acme.delegation.json; edgenlu trust add minilm.sig.json;
    /// edgenlu trust add --dev
    Add {
        /// A delegation (from `trust delegate`) or model signature (from `sign-model`) file,
        /// or with --root a public key file.
        #[arg(required_unless_present = "dev")]
        file: Option<PathBuf>,
        /// FILE is a root public key to pin.
        #[arg(long)]
        root: bool,
        /// Trust the public development key that signs the bundled skills (never on a
        /// production device: anyone can sign with it).
        #[arg(long, conflicts_with_all = ["file", "root"])]
        dev: bool,
    },
    /// Revoke a publisher's delegation or unpin a root key; skills they vouched for stop
    /// loading.
    ///
    /// Examples: edgenlu trust remove --publisher acme; edgenlu trust remove --root 03ba56a92f8094eb
    Remove {
        /// The publisher whose delegation to revoke.
        #[arg(long, required_unless_present = "root", conflicts_with = "root")]
        publisher: Option<String>,
        /// The id of the root key to unpin.
        #[arg(long)]
        root: Option<String>,
    },
    /// Show pinned roots, delegations and the highest accepted version of each skill.
    ///
    /// Example: edgenlu trust list --json
    List {
        /// One JSON object with roots, delegations, signed models and accepted versions.
        #[arg(long)]
        json: bool,
    },
    /// Sign a delegation with a root key: the publisher key may sign skills that use these
    /// capabilities and models, until the expiry.
    ///
    /// Example: edgenlu trust delegate --root-key keys/vendor.key --publisher acme
    /// --key keys/acme.pub --capability uplink --model 'all-minilm-*' --days 90 -o acme.delegation.json
    Delegate {
        /// The root's secret key file.
        #[arg(long)]
        root_key: PathBuf,
        /// The publisher's name (manifests must carry it).
        #[arg(long)]
        publisher: String,
        /// The publisher's public key file.
        #[arg(long)]
        key: PathBuf,
        /// A capability it may grant (repeatable).
        #[arg(long = "capability", value_enum)]
        capabilities: Vec<Cap>,
        /// A model store name, or a prefix ending in '*', it may grant (repeatable).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Days until it expires.
        #[arg(long, default_value_t = 365, value_parser = crate::count::<u64>)]
        days: u64,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// A capability, as the CLI spells it.
#[derive(Clone, Copy, ValueEnum)]
pub enum Cap {
    /// Send utterances to the uplink.
    Uplink,
    /// Generate text with a decoder.
    Generate,
    /// Ship the device's flow (a component of kind `flow`).
    Flow,
}

fn runtime(store: &ModelStore) -> Result<Runtime> {
    crate::runtime(store.clone())
}

fn days_left(expires: u64, now: u64) -> String {
    if expires <= now {
        "EXPIRED".into()
    } else {
        format!("{} days left", (expires - now) / DAY_SECONDS)
    }
}

/// `edgenlu list`: each installed skill, verified again as a load would.
fn list_skills(skills: &SkillStore, json: bool) -> Result<()> {
    for (name, s) in skills.list()? {
        let refused = skills.current(&name).err().map(|e| e.to_string());
        print_installed(
            &name,
            serde_json::json!({ "name": name }),
            &s,
            refused,
            json,
        );
    }
    Ok(())
}

/// One line of `edgenlu list` (or, with `json`, the object `head` with the state added): a
/// skill or the device's flow, shown as `label`, its versions, digest, pending health check,
/// and why it no longer verifies.
pub(crate) fn print_installed(
    label: &str,
    mut head: serde_json::Value,
    s: &SkillState,
    refused: Option<String>,
    json: bool,
) {
    if json {
        head["version"] = s.current.version.into();
        head["sha256"] = s.current.sha256.clone().into();
        head["previous"] = s.previous.as_ref().map(|p| p.version).into();
        head["health_check_pending"] = s.unchecked.into();
        head["refused"] = refused.into();
        println!("{head}");
        return;
    }
    let prev = (s.previous.as_ref()).map_or("-".to_string(), |p| p.version.to_string());
    let pending = if s.unchecked {
        "  (health check pending: runs on next load)"
    } else {
        ""
    };
    let refused = refused.map_or(String::new(), |why| format!("  REFUSED: {why}"));
    println!(
        "{label}  version {}  previous {prev}  sha256 {}{pending}{refused}",
        s.current.version, s.current.sha256
    );
}

/// `edgenlu trust list`: roots, delegations, signed models and version floors.
fn list_trust(trust: &TrustStore, store: &ModelStore, json: bool) -> Result<()> {
    let now = unix_now();
    let roots = trust.roots()?;
    let delegations = trust.delegations()?;
    let mut signed = Vec::new();
    for m in store.list()? {
        if let Ok(Some(sig)) = trust.model_signature(&m.name) {
            signed.push((m.name, sig.key_id, sig.sha256 == m.sha256, sig.sha256));
        }
    }
    let accepted = trust.accepted()?;
    if json {
        let roots: Vec<_> = roots
            .iter()
            .map(|r| serde_json::json!({"key_id": r.key_id, "name": r.name}))
            .collect();
        let delegations: Vec<_> = delegations
            .iter()
            .map(|d| {
                serde_json::json!({
                    "key_id": d.key_id, "publisher": d.publisher,
                    "capabilities": d.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "models": d.models, "expires": d.expires, "expired": d.expires <= now,
                })
            })
            .collect();
        let models: Vec<_> = signed
            .iter()
            .map(|(name, key_id, matches, sha256)| {
                serde_json::json!({"name": name, "sha256": sha256, "signed_by": key_id, "store_copy_matches": matches})
            })
            .collect();
        let accepted: BTreeMap<_, _> = accepted.iter().map(|(n, a)| (n, a.version)).collect();
        println!(
            "{}",
            serde_json::json!({"roots": roots, "delegations": delegations, "models": models, "accepted": accepted})
        );
        return Ok(());
    }
    for r in &roots {
        println!("root       {}  {}", r.key_id, r.name);
    }
    for d in &delegations {
        let caps: Vec<&str> = d.capabilities.iter().map(|c| c.as_str()).collect();
        println!(
            "publisher  {}  {}  capabilities [{}]  models [{}]  {}",
            d.key_id,
            d.publisher,
            caps.join(", "),
            d.models.join(", "),
            days_left(d.expires, now)
        );
    }
    for (name, key_id, matches, sha256) in &signed {
        let ok = if *matches { "matches" } else { "DIFFERS" };
        println!("model      {sha256}  {name}  signed by {key_id}, store copy {ok}");
    }
    for (name, a) in &accepted {
        println!("accepted   {name} >= {}", a.version);
    }
    Ok(())
}

/// Reads a signed skill file and checks it as an install would (`trust.verify` now: signature,
/// delegation, grants, expiry, version floor); returns the bytes that were checked. A file
/// that does not verify is an error saying why.
pub(crate) fn verify_file(trust: &TrustStore, file: &Path) -> Result<(Vec<u8>, Verified)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let v = trust
        .verify(&bytes, unix_now())
        .with_context(|| format!("{} is refused", file.display()))?;
    Ok((bytes, v))
}

/// Runs one trust command against the model store's root.
pub fn run(cmd: TrustCli, store: &ModelStore) -> Result<()> {
    let skills = || SkillStore::at(store.root()).context("opening the skill store");
    match cmd {
        TrustCli::Keygen { name, dir } => {
            std::fs::create_dir_all(&dir)?;
            let key = keys::generate()?;
            keys::write_keypair(&dir, &name, &key)?;
            println!(
                "{}  {} (secret: {}, public: {})",
                keys::key_id_hex(&key.verifying_key()),
                name,
                dir.join(format!("{name}.key")).display(),
                dir.join(format!("{name}.pub")).display()
            );
        }
        TrustCli::Sign {
            component,
            manifest,
            key,
            dev_intents,
            dev: d,
            output,
        } => {
            let signed = if dev_intents {
                let mut m = dev::intents_manifest(&d.encoder, &d.index, d.version);
                m.expires = d.expires_days.map(|days| days_after(unix_now(), days));
                if d.pin_models {
                    for name in &m.models {
                        let entry = store
                            .entry(name)?
                            .with_context(|| format!("model {name} is not in the store"))?;
                        m.model_sha256.insert(name.clone(), entry.sha256);
                    }
                }
                edgenlu_device::installed::signed_intents(&m)?
            } else {
                let (component, manifest, key) = (
                    component.expect("clap requires it"),
                    manifest.expect("clap requires it"),
                    key.expect("clap requires it"),
                );
                let bytes = std::fs::read(&manifest)
                    .with_context(|| format!("reading {}", manifest.display()))?;
                let m = Manifest::parse(&bytes)
                    .with_context(|| format!("checking {}", manifest.display()))?;
                let key = keys::read_secret(&key)?;
                let wasm = std::fs::read(&component)
                    .with_context(|| format!("reading {}", component.display()))?;
                skillfile::sign(&wasm, &m.to_bytes()?, &key.key)?
            };
            std::fs::write(&output, &signed)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{}: {} bytes, signed", output.display(), signed.len());
        }
        TrustCli::SignModel { name, key, output } => {
            let entry = store
                .verify(&name)
                .with_context(|| format!("checking model {name}"))?;
            let key = keys::read_secret(&key)?;
            let sig = ModelSignature::sign(&name, &entry.sha256, &key.key);
            std::fs::write(&output, serde_json::to_vec_pretty(&sig)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "{}: {name} sha256 {} signed by key {}",
                output.display(),
                sig.sha256,
                sig.key_id
            );
        }
        TrustCli::Verify { file } => {
            let (_, v) = verify_file(skills()?.trust(), &file)?;
            println!(
                "{}: OK: {} version {} by {} (key {}, delegation {}), sha256 {}",
                file.display(),
                v.manifest.name,
                v.manifest.version,
                v.delegation.publisher,
                v.delegation.key_id,
                days_left(v.delegation.expires, unix_now()),
                v.sha256
            );
        }
        TrustCli::Inspect {
            file,
            manifest_only,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let secs = skillfile::sections(&bytes)?;
            let manifest = secs
                .iter()
                .find(|s| s.name.as_deref() == Some(MANIFEST_SECTION))
                .map(|s| &bytes[s.payload_start..s.end]);
            if manifest_only {
                let m = manifest.context("no edgenlu-manifest section")?;
                let v: serde_json::Value = serde_json::from_slice(m)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("{} ({} bytes), UNVERIFIED:", file.display(), bytes.len());
            for s in &secs {
                println!(
                    "  section id {:>2} at {:>8}..{:<8} {}",
                    s.id,
                    s.start,
                    s.end,
                    s.name.as_deref().unwrap_or("")
                );
            }
            match skillfile::parse(&bytes) {
                Ok(p) => println!("signed by key {}", edgenlu_trust::to_hex(&p.key_id)),
                Err(e) => println!("signature: {e}"),
            }
            match skillfile::component_import_items(&bytes) {
                Ok(imports) => {
                    println!("imports:");
                    for i in &imports {
                        println!("  {}", i.name);
                    }
                    for (what, c) in Capability::required_by(&imports) {
                        println!("  {what}  (needs capability {})", c.as_str());
                    }
                }
                Err(e) => println!("imports: {e}"),
            }
            if let Some(m) = manifest {
                match serde_json::from_slice::<serde_json::Value>(m) {
                    Ok(v) => println!("manifest:\n{}", serde_json::to_string_pretty(&v)?),
                    Err(e) => println!("manifest: not JSON: {e}"),
                }
            }
            if !secs
                .iter()
                .any(|s| s.name.as_deref() == Some(SIGNATURE_SECTION))
            {
                println!("(no {SIGNATURE_SECTION} section)");
            }
        }
        TrustCli::Trust(TrustStoreCli::Add { file, root, dev }) => {
            let trust = skills()?.trust().clone();
            if dev {
                dev::trust_dev(&trust, unix_now())?;
                println!(
                    "trusting the development key (publisher {}): for development only",
                    dev::DEV_PUBLISHER
                );
            } else if root {
                let file = file.expect("clap requires it");
                let key = PublicKeyFile::read(&file)?;
                trust.add_root(&key)?;
                println!("pinned root {} ({})", key.key_id, key.name);
            } else if let Ok(sig) = ModelSignature::read(file.as_ref().expect("clap requires it")) {
                trust.add_model_signature(&sig, unix_now())?;
                println!(
                    "model {} signed by key {} (sha256 {})",
                    sig.model, sig.key_id, sig.sha256
                );
            } else {
                let file = file.expect("clap requires it");
                let d = trust.add_delegation(&SignedDelegation::read(&file)?)?;
                println!(
                    "publisher {} (key {}) delegated, {}",
                    d.publisher,
                    d.key_id,
                    days_left(d.expires, unix_now())
                );
            }
        }
        TrustCli::Trust(TrustStoreCli::Remove { publisher, root }) => {
            let trust = skills()?.trust().clone();
            let (what, removed) = match (publisher, root) {
                (Some(p), _) => (format!("publisher {p}"), trust.remove_delegation(&p)?),
                (None, Some(r)) => (format!("root {r}"), trust.remove_root(&r)?),
                (None, None) => unreachable!("clap requires one"),
            };
            if !removed {
                bail!("{what} is not in the trust store");
            }
            println!("removed {what}");
        }
        TrustCli::Trust(TrustStoreCli::List { json }) => {
            list_trust(skills()?.trust(), store, json)?
        }
        TrustCli::Trust(TrustStoreCli::Delegate {
            root_key,
            publisher,
            key,
            capabilities,
            models,
            days,
            output,
        }) => {
            let root = keys::read_secret(&root_key)?;
            let p = PublicKeyFile::read(&key)?;
            let now = unix_now();
            let d = Delegation {
                publisher,
                key_id: p.key_id,
                public_key: p.public_key,
                capabilities: capabilities
                    .iter()
                    .map(|c| match c {
                        Cap::Uplink => Capability::Uplink,
                        Cap::Generate => Capability::Generate,
                        Cap::Flow => Capability::Flow,
                    })
                    .collect(),
                models,
                issued: now,
                expires: days_after(now, days),
            };
            let signed = d.sign(&root.key)?;
            std::fs::write(&output, serde_json::to_vec_pretty(&signed)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "{}: {} delegated by root {} for {days} days",
                output.display(),
                d.publisher,
                signed.root_key_id
            );
        }
        TrustCli::Install {
            file,
            no_health_check,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let skills = skills()?;
            let kind = edgenlu_trust::skillfile::declared_kind(&bytes);
            let report = if kind == Kind::Flow {
                crate::flows::install(&runtime(store)?, store, &bytes, no_health_check)?
            } else if no_health_check {
                skills.install(&bytes, unix_now())?
            } else {
                skills.install_checked(&runtime(store)?, &bytes, unix_now())?
            };
            let health = match report.probes_passed {
                Some(n) => format!("health check passed ({n} probes)"),
                None => "no health check".into(),
            };
            let what = match kind {
                Kind::Flow => "the device's flow ",
                Kind::Skill => "",
            };
            match report.previous {
                Some(p) => println!(
                    "installed {what}{} version {} (previous: {p}); {health}",
                    report.name, report.version
                ),
                None => println!(
                    "installed {what}{} version {}; {health}",
                    report.name, report.version
                ),
            }
        }
        TrustCli::List { json } => {
            list_skills(&skills()?, json)?;
            crate::flows::list(&crate::flows::flow_store(store)?, json)?;
        }
        TrustCli::Rollback { name } => {
            let (skills, flows) = (skills()?, crate::flows::flow_store(store)?);
            if skills.state(&name)?.is_none() && crate::flows::names_the_flow(&flows, &name)? {
                return crate::flows::rollback(&flows);
            }
            let s = skills.rollback(&name)?;
            println!(
                "{name}: version {} is current again (version {} kept as previous)",
                s.current.version,
                s.previous.map_or(0, |p| p.version)
            );
        }
        TrustCli::Remove { name } => {
            let (skills, flows) = (skills()?, crate::flows::flow_store(store)?);
            if skills.state(&name)?.is_none() && crate::flows::names_the_flow(&flows, &name)? {
                return crate::flows::remove(&flows);
            }
            skills.remove(&name)?;
            println!("removed {name}");
        }
        TrustCli::Ask { name, texts } => {
            let rt = runtime(store)?;
            let (v, skill) = skills()?.load(&rt, &name)?;
            if texts.is_empty() {
                bail!("no utterances");
            }
            for text in texts {
                let answer = skill
                    .handle(&text)
                    .with_context(|| format!("answering {text:?}"))?;
                println!(
                    "{}",
                    serde_json::json!({ "skill": name, "version": v.manifest.version, "text": text, "response": answer })
                );
            }
        }
    }
    Ok(())
}
