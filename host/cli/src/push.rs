//! `edgenlu push`: publish a signed skill file or a signed model to an OCI registry.

use anyhow::{bail, Context, Result};
use clap::Args;
use edgenlu_fleet::client::RegistryClient;
use edgenlu_fleet::push::{push_model, push_skill, Pushed};
use edgenlu_fleet::reference::ArtifactRef;
use edgenlu_fleet::FleetError;
use edgenlu_models::store::ModelStore;
use edgenlu_trust::models::ModelSignature;
use edgenlu_trust::skills::SkillStore;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `edgenlu push FILE REF`.
#[derive(Args)]
pub struct PushArgs {
    /// A signed skill file (.wasm); a GGUF model file (with --signature); or the name of a
    /// model in the store that has a signature in the trust store (`trust add SIG.json`).
    file: String,
    /// Where to push: `registry/repository:tag` (e.g. `registry.example.com/acme/intents:2`).
    reference: String,
    /// The model's detached signature (`edgenlu sign-model`): needed for a GGUF file; for a
    /// store model, instead of the one in the trust store.
    #[arg(long)]
    signature: Option<PathBuf>,
    /// Allow plain HTTP to a registry that is not on this machine (loopback registries are
    /// always spoken to over HTTP; every other one over HTTPS unless this is given).
    #[arg(long)]
    insecure: bool,
}

/// What FILE is, from its first bytes.
enum Kind {
    Skill,
    Gguf,
}

fn kind_of(path: &Path) -> Result<Kind> {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("reading {}", path.display()))?;
    match &magic {
        b"\0asm" => Ok(Kind::Skill),
        b"GGUF" => Ok(Kind::Gguf),
        _ => bail!(
            "{} is neither a skill file (Wasm) nor a GGUF model",
            path.display()
        ),
    }
}

/// Pushes what `args` names.
pub fn run(args: &PushArgs, store: &ModelStore) -> Result<()> {
    let target = ArtifactRef::parse(&args.reference, args.insecure)?;
    let client = RegistryClient::new(target)?;
    let path = Path::new(&args.file);
    let pushed = if path.is_file() {
        match (kind_of(path)?, &args.signature) {
            (Kind::Skill, None) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                push_skill(&client, &bytes)?
            }
            (Kind::Skill, Some(_)) => bail!("--signature is for a GGUF model; a skill file carries its own"),
            (Kind::Gguf, Some(sig)) => push_model(&client, path, &ModelSignature::read(sig)?)?,
            (Kind::Gguf, None) => bail!(
                "give the model's signature with --signature SIG.json (edgenlu sign-model makes one)"
            ),
        }
    } else {
        let name = &args.file;
        let entry = store
            .verify(name)
            .with_context(|| format!("{name} is neither a file nor a model in the store"))?;
        let sig = match &args.signature {
            Some(file) => ModelSignature::read(file)?,
            None => SkillStore::at(store.root())?
                .trust()
                .model_signature(name)?
                .ok_or_else(|| FleetError::UnsignedModel(name.clone()))?,
        };
        if sig.sha256 != entry.sha256 {
            bail!(FleetError::SignatureMismatch {
                model: name.clone(),
                signed: sig.sha256,
                file: entry.sha256,
            });
        }
        push_model(&client, &store.path_for(name)?, &sig)?
    };
    print_pushed(&pushed);
    Ok(())
}

fn print_pushed(p: &Pushed) {
    println!(
        "pushed {} {} version {} ({} bytes) to {}@{}",
        p.kind, p.title, p.version, p.size, p.reference, p.manifest_digest
    );
}
