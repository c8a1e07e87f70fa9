//! Shared helpers for the end-to-end tests in `tests/`: the model store the tests use (a
//! temporary one over the real store's models) and where the golden files are, and a runtime
//! over that store. A missing prerequisite fails the test with the command that provides it: a
//! skipped test is not a passing one.

pub mod registry;
pub mod schema_check;

pub use registry::{endless_manifest_server, tree_listing, Cut, CuttingProxy, Registry};

use edgenlu::{ModelCatalog, Runtime, RuntimeOptions};
use edgenlu_models::store::ModelStore;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// The device's model store (`$EDGENLU_HOME`, else the XDG default), which `edgenlu models
/// fetch` fills, opened read only: tests never write into it.
pub fn real_store() -> ModelStore {
    let root = ModelStore::default_root().expect("the model store's location");
    ModelStore::read_only(&root).unwrap_or_else(|e| {
        panic!(
            "no model store at {}: run `edgenlu models fetch` ({e})",
            root.display()
        )
    })
}

/// The model store the tests use, one per test process: a temporary store with the real
/// store's models linked ([`temp_store`]), so the datastores, skills and trust a test writes
/// never reach the user's store.
pub fn store() -> ModelStore {
    static STORE: std::sync::OnceLock<ModelStore> = std::sync::OnceLock::new();
    STORE.get_or_init(|| temp_store("shared")).clone()
}

/// A new, empty temporary store called `tag` (under `$TMPDIR/edgenlu-tests/`) whose models are
/// the real store's, linked read only (`ModelStore::link_models_from`), and whose
/// compiled-component cache is the real store's (content-keyed, so sharing it only saves
/// compiling). Left behind when the test process ends; the next one removes it (a stale
/// temporary: `edgenlu_models::atomic::remove_stale_temps`).
pub fn temp_store(tag: &str) -> ModelStore {
    let parent = std::env::temp_dir().join("edgenlu-tests");
    std::fs::create_dir_all(&parent).expect("creating the tests' temporary directory");
    edgenlu_models::atomic::remove_stale_temps(&parent);
    let root = parent.join(format!("{tag}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = ModelStore::at(&root).expect("creating a temporary model store");
    let real = real_store();
    store
        .link_models_from(&real)
        .expect("linking the real store's models");
    let cache = real.root().join("cache");
    if cache.is_dir() {
        std::os::unix::fs::symlink(&cache, root.join("cache")).expect("linking the cache");
    }
    store
}

/// A runtime over the test model store, with the compiled-component cache in it, set up as
/// the `edgenlu` binary sets up its own: engine options from the environment, freed memory
/// returned to the OS.
pub fn runtime() -> Runtime {
    runtime_over(store())
}

/// Budgets for the hostile skill in the tests: small, so that attacks run into them quickly,
/// with `deadline`.
pub fn hostile_limits(deadline: Duration) -> edgenlu::Limits {
    edgenlu::Limits {
        deadline,
        guest_memory: 16 << 20,
        host_memory: 16 << 20,
        handles: 256,
        // Generations may hold up to ~340 positions of SmolLM2's kv cache in 16 MiB; the
        // token budget is what "generation-too-many-tokens" runs into.
        max_tokens: 32,
        ..edgenlu::Limits::default()
    }
}

/// The hostile test skill (`guest/hostile`) over the default encoder and decoder, loaded on
/// `rt` with `limits`.
pub fn load_hostile(rt: &Runtime, limits: edgenlu::Limits) -> edgenlu::Skill {
    use edgenlu::bundled::{hostile_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
    rt.load_skill(hostile_skill(DEFAULT_ENCODER, DEFAULT_DECODER, limits))
        .expect("loading the hostile skill")
}

/// The hostile test skill as a route of the device pipeline: [`edgenlu::bundled::hostile_skill`]
/// with the `encoder` and `index` a route reads from its config, over datastore `index`.
pub fn hostile_route_spec(index: &str, limits: edgenlu::Limits) -> edgenlu::SkillSpec {
    use edgenlu::bundled::{hostile_skill, DEFAULT_DECODER, DEFAULT_ENCODER};
    let mut spec = hostile_skill(DEFAULT_ENCODER, DEFAULT_DECODER, limits);
    for (key, value) in [("encoder", DEFAULT_ENCODER), ("index", index)] {
        spec.skill.grants.config.insert(key.into(), value.into());
    }
    spec
}

/// A size field of this process's `/proc/self/status` (e.g. `VmRSS`), in bytes.
pub fn proc_status_bytes(field: &str) -> usize {
    status_bytes("/proc/self/status", field)
}

/// A size field of process `pid`'s `/proc/<pid>/status` (e.g. `VmHWM`), in bytes.
pub fn process_status_bytes(pid: u32, field: &str) -> usize {
    status_bytes(&format!("/proc/{pid}/status"), field)
}

fn status_bytes(path: &str, field: &str) -> usize {
    let status = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {path}"));
    kb * 1024
}

/// Makes this process's peak RSS (`VmHWM`) start again from its current RSS.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
}

/// A model store of its own for a test that writes into its store and needs `models`: a
/// [`temp_store`] (every model linked). The test may remove it when done.
pub fn scratch_store(tag: &str, models: &[&str]) -> ModelStore {
    for name in models {
        require_model(name);
    }
    temp_store(tag)
}

/// A runtime over `store`, with the compiled-component cache in it, set up as [`runtime`].
pub fn runtime_over(store: ModelStore) -> Runtime {
    edgenlu::return_freed_memory_to_the_os();
    let cache = store.root().join("cache/components");
    let options = RuntimeOptions::from_env().expect("engine options from the environment");
    Runtime::with_options(ModelCatalog::new(store), Some(cache), options)
        .expect("creating the runtime")
}

/// Fails unless model `name` is in the store (linked from the real one).
pub fn require_model(name: &str) {
    let store = store();
    assert!(
        store
            .list()
            .expect("listing the store")
            .iter()
            .any(|e| e.name == name),
        "model {name} is not in the store at {}: run `edgenlu models fetch` (scripts/test.sh does)",
        store.root().display()
    );
}

/// Where a file made by a script in scripts/golden/ lives: `$EDGENLU_GOLDEN_DIR`, else
/// `golden/` at the repository root. Fails the test, naming the script's place, if it is
/// missing.
pub fn golden_path(file: &str) -> PathBuf {
    let dir = std::env::var_os("EDGENLU_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden"));
    let path = dir.join(file);
    assert!(
        path.exists(),
        "golden file {} is missing: scripts/test.sh generates it with scripts/golden/",
        path.display()
    );
    path
}

/// A golden file made by a script in scripts/golden/ (see [`golden_path`]), parsed as JSON
/// Lines.
pub fn golden_lines<T: serde::de::DeserializeOwned>(file: &str) -> Vec<T> {
    let path = golden_path(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}): scripts/test.sh generates it with scripts/golden/",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a golden line parses"))
        .collect()
}

/// Builds a datastore called `name` in the test store from the first `per_intent` SNIPS train
/// examples of each intent, embedded by the bundled intents skill, and records it with
/// `provenance`. Returns how many examples it holds.
pub fn build_snips_index(name: &str, per_intent: usize, provenance: &str) -> usize {
    build_snips_index_in(&store(), name, per_intent, provenance)
}

/// [`build_snips_index`] into `store`.
pub fn build_snips_index_in(
    store: &ModelStore,
    name: &str,
    per_intent: usize,
    provenance: &str,
) -> usize {
    use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
    use edgenlu_train::datastore;
    require_model(DEFAULT_ENCODER);
    let embedder = runtime()
        .load_skill(intents_skill(
            DEFAULT_ENCODER,
            None,
            edgenlu::Limits::default(),
        ))
        .expect("loading the intents skill");
    let train = datastore::read_examples(&datasets_dir().join("snips/train.jsonl"))
        .expect("reading SNIPS train");
    let train = datastore::limit_per_intent(train, per_intent);
    let new = new_datastore(store, name);
    datastore::build(&embedder, DEFAULT_ENCODER, &train, 2, new.path(), &|_| {})
        .expect("building the datastore");
    new.commit(provenance).expect("recording the datastore");
    train.len()
}

/// Trains a skill's datastore `name` in the test store (head, and tagger from SNIPS slots),
/// embedded by the bundled intents skill.
pub fn build_skill_data(
    name: &str,
    train: &[edgenlu_train::datastore::Example],
    val: Option<&[edgenlu_train::datastore::Example]>,
) {
    let new = new_datastore(&store(), name);
    edgenlu_train::training::build(
        &intents(None),
        edgenlu::bundled::DEFAULT_ENCODER,
        edgenlu_train::training::Examples { train, val },
        2,
        &edgenlu_models::softmax_head::HeadTraining::default(),
        new.path(),
        &|_, _, _| {},
    )
    .expect("training the skill's heads");
    new.commit("edgenlu-tests")
        .expect("recording the datastore");
}

/// Starts writing datastore `name` into `store` (a test's), replacing one of that name.
pub fn new_datastore(store: &ModelStore, name: &str) -> edgenlu_models::store::NewEntry {
    store
        .replace(name, edgenlu_models::store::EntryKind::Datastore, &())
        .expect("a datastore the test store may hold")
}

/// Two SNIPS domain skills' datastores, each trained only on its own intents (30 examples
/// each), built once per test binary: `test-router-music` (AddToPlaylist, PlayMusic) and
/// `test-router-weather` (GetWeather, BookRestaurant).
pub fn domain_indexes() -> [&'static str; 2] {
    use edgenlu_train::datastore;
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let names = ["test-router-music", "test-router-weather"];
    BUILT.get_or_init(|| {
        require_model(edgenlu::bundled::DEFAULT_ENCODER);
        let all = datastore::limit_per_intent(
            datastore::read_examples(&datasets_dir().join("snips/train.jsonl"))
                .expect("reading SNIPS train"),
            30,
        );
        for (name, intents) in names.iter().zip([
            ["AddToPlaylist", "PlayMusic"],
            ["GetWeather", "BookRestaurant"],
        ]) {
            let mine: Vec<_> = all
                .iter()
                .filter(|e| intents.contains(&e.intent.as_str()))
                .cloned()
                .collect();
            build_skill_data(name, &mine, None);
        }
    });
    names
}

/// Path of the repository's shared datasets (`../shared/datasets` beside the checkout, or
/// `$EDGENLU_DATASETS`).
pub fn datasets_dir() -> PathBuf {
    std::env::var_os("EDGENLU_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"))
}

/// Tokenizes every golden text with `skill`'s linked tokenizer component and fails, showing
/// the first differences, unless every text gets exactly the reference ids. Returns how many
/// texts were compared.
pub fn assert_same_ids(skill: &edgenlu::Skill, golden: &[(String, Vec<u32>)], what: &str) -> usize {
    assert!(
        golden.len() > 30_000,
        "expected every dataset text, got {}",
        golden.len()
    );
    let texts: Vec<String> = golden.iter().map(|(t, _)| t.clone()).collect();
    let ours = skill.tokenize(&texts).expect("tokenizing");
    let mismatches: Vec<_> = golden
        .iter()
        .zip(&ours)
        .filter(|((_, ids), o)| ids != *o)
        .collect();
    for ((text, ids), o) in mismatches.iter().take(5) {
        eprintln!("{text:?}\n  reference: {ids:?}\n  ours:      {o:?}");
    }
    eprintln!(
        "{what} parity: {} of {} texts identical",
        golden.len() - mismatches.len(),
        golden.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} texts tokenized differently",
        mismatches.len(),
        golden.len()
    );
    golden.len()
}

/// The bundled intents skill answering from datastore `index` (`None`: the router's
/// embedder, which has no datastore).
pub fn intents(index: Option<&str>) -> std::sync::Arc<edgenlu::Skill> {
    use edgenlu::bundled::{intents_skill, DEFAULT_ENCODER};
    require_model(DEFAULT_ENCODER);
    std::sync::Arc::new(
        runtime()
            .load_skill(intents_skill(
                DEFAULT_ENCODER,
                index,
                edgenlu::Limits::default(),
            ))
            .expect("loading the intents skill"),
    )
}

/// The device pipeline over `routes` with the default policy, template replies and no uplink.
pub fn pipeline_over(
    routes: Vec<edgenlu_device::router::Route>,
) -> edgenlu_device::pipeline::Pipeline {
    use edgenlu::bundled::{default_policy, DEFAULT_ENCODER};
    edgenlu_device::pipeline::Pipeline {
        router: std::sync::Arc::new(
            edgenlu_device::router::Router::new(DEFAULT_ENCODER, intents(None), routes)
                .expect("building the router"),
        ),
        policy: edgenlu::policy::Policy::load(
            &runtime(),
            &default_policy(Default::default()).unwrap(),
        )
        .expect("loading the policy"),
        phraser: None,
        uplink: None,
        flow: edgenlu::flow::Flow::load(&runtime(), &edgenlu::bundled::default_flow())
            .expect("loading the default flow"),
    }
}

/// `edgenlu serve`'s server over `config`, answering `/v1/nlu` through `nlu` (on a device
/// online, on mains power) and chat with the bundled chat skill, as the CLI starts it.
pub fn serve(
    config: &edgenlu_serve::ServeConfig,
    nlu: edgenlu_serve::LivePipeline,
) -> edgenlu_serve::Server {
    use edgenlu::bundled::{chat_limits, chat_skill, DEFAULT_DECODER};
    require_model(DEFAULT_DECODER);
    let chat = runtime()
        .load_skill(chat_skill(DEFAULT_DECODER, chat_limits()))
        .expect("loading the chat skill");
    edgenlu_serve::Server::start(
        config,
        edgenlu_serve::Skills {
            nlu,
            device: edgenlu_device::pipeline::DeviceState {
                network_up: true,
                battery_percent: None,
            },
            chat: std::sync::Arc::new(chat),
            decoder: DEFAULT_DECODER.into(),
            extra_metrics: None,
        },
    )
    .expect("starting the server")
}

/// `edgenlu serve`'s server over `config`, with the bundled intents skill answering from
/// datastore `index` (as the vendor's skill, named after it) and the bundled chat skill.
pub fn start_server(config: &edgenlu_serve::ServeConfig, index: &str) -> edgenlu_serve::Server {
    let rt = runtime();
    let route = edgenlu_device::router::Route::new(index, intents(Some(index)), true, rt.catalog())
        .expect("a route over the datastore");
    let skills =
        edgenlu_trust::skills::SkillStore::at(store().root()).expect("opening the skill store");
    serve(
        config,
        edgenlu_serve::LivePipeline::new(pipeline_over(vec![route]), skills, rt),
    )
}

/// A SNIPS datastore of 20 examples per intent, `trust-snips-20`, built once per test binary.
pub fn tiny_index() -> &'static str {
    snips_index_once("trust-snips-20")
}

/// The datastore `run`, `eval` and `serve` answer from without `--index` (`snips-intents`),
/// in the test store: 20 SNIPS examples per intent, built once per test binary.
pub fn default_index() -> &'static str {
    snips_index_once(edgenlu::bundled::DEFAULT_INDEX)
}

/// Datastore `name` of 20 SNIPS examples per intent, built once per test binary.
fn snips_index_once(name: &'static str) -> &'static str {
    static BUILT: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&name) {
        build_snips_index(name, 20, "edgenlu-tests");
        built.push(name);
    }
    name
}

/// One HTTP/1.1 request; returns the status and the body (chunked bodies decoded).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_within(addr, method, path, body, Duration::from_secs(120))
}

/// [`http`], failing the test unless the whole response comes within `timeout`.
pub fn http_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) before reading a large body and close: ignore write errors.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    // A reset after a refusal (e.g. 413 before the body) still leaves the response read.
    if let Err(e) = s.read_to_end(&mut raw) {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            panic!("{method} {path}: no whole response within {timeout:?}");
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

/// The body of a chunked HTTP/1.1 response, decoded.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The `edgenlu` binary cargo built beside the running test (target/<profile>/edgenlu).
pub fn built_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("edgenlu");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// What a run of the binary gave.
pub struct Ran {
    /// Whether it exited with success.
    pub ok: bool,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs the built `edgenlu args...` with `store` as its store (`EDGENLU_HOME`).
pub fn edgenlu_in(store: &ModelStore, args: &[&str]) -> Ran {
    edgenlu_in_env(store, &[], args)
}

/// [`edgenlu_in`] with environment variables `env` set for it.
pub fn edgenlu_in_env(store: &ModelStore, env: &[(&str, &std::path::Path)], args: &[&str]) -> Ran {
    let out = edgenlu_command(store, args)
        .envs(env.iter().copied())
        .output()
        .expect("running edgenlu");
    Ran::from_output(args, &out)
}

/// [`edgenlu_in`], killed and failing the test if it runs longer than `deadline`.
pub fn edgenlu_within(store: &ModelStore, args: &[&str], deadline: Duration) -> Ran {
    use std::process::Stdio;
    let mut child = edgenlu_command(store, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running edgenlu");
    // Read while it runs, so a full pipe never blocks it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for edgenlu") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("edgenlu {args:?} ran past {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Ran::from_output(args, &out)
}

/// `edgenlu args...` with `store` as its store and no uplink.
fn edgenlu_command(store: &ModelStore, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(built_binary());
    command
        .args(args)
        .env("EDGENLU_HOME", store.root())
        .env_remove("EDGENLU_UPLINK_URL");
    command
}

impl Ran {
    /// What `edgenlu args...` gave, logged to the test's stderr.
    fn from_output(args: &[&str], out: &std::process::Output) -> Ran {
        let ran = Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "edgenlu {args:?}: {}\n{}{}",
            if ran.ok { "ok" } else { "failed" },
            ran.stdout,
            ran.stderr
        );
        ran
    }
}

/// A loopback address no one listens on right now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Waits until `server` (an `edgenlu serve`) answers `/healthz` at `addr`, or fails if it
/// exits first.
pub fn wait_ready(server: &mut std::process::Child, addr: SocketAddr) {
    let start = std::time::Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("edgenlu serve exited before listening: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http(addr, "GET", "/healthz", b"").0, 200);
}

/// A deterministic test key (tests need no randomness to be reproducible): by convention 1 is
/// the vendor's root, 2 publisher "acme", and another number a key no one delegated.
pub fn test_key(n: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[n; 32])
}

/// A trust store at `root` with root `test_key(1)` pinned and publisher "acme"
/// (`test_key(2)`) delegated `capabilities` and `models`, issued a day ago, expiring at
/// `expires` (unix seconds).
pub fn acme_trust(
    root: &std::path::Path,
    capabilities: Vec<edgenlu_trust::manifest::Capability>,
    models: &[&str],
    expires: u64,
) -> edgenlu_trust::store::TrustStore {
    use edgenlu_trust::keys::PublicKeyFile;
    let trust = edgenlu_trust::store::TrustStore::at(root).expect("opening the trust store");
    trust
        .add_root(&PublicKeyFile::new("root", &test_key(1).verifying_key()))
        .expect("pinning the root");
    let p = PublicKeyFile::new("acme", &test_key(2).verifying_key());
    let d = edgenlu_trust::store::Delegation {
        publisher: "acme".into(),
        key_id: p.key_id,
        public_key: p.public_key,
        capabilities,
        models: models.iter().map(|s| s.to_string()).collect(),
        issued: edgenlu_trust::unix_now() - edgenlu_trust::DAY_SECONDS,
        expires,
    };
    trust
        .add_delegation(&d.sign(&test_key(1)).expect("signing the delegation"))
        .expect("storing the delegation");
    trust
}

/// Trusts publisher "acme" in `root`'s trust store for the encoder models and the tests'
/// datastores, for a day.
pub fn trust_acme(root: &std::path::Path) -> edgenlu_trust::store::TrustStore {
    acme_trust(
        root,
        vec![],
        &["all-minilm-*", "trust-snips-*"],
        edgenlu_trust::unix_now() + edgenlu_trust::DAY_SECONDS,
    )
}

/// The bundled intents skill as publisher "acme" at `version`, signed with key `signer`.
pub fn acme_skill(version: u64, signer: u8) -> Vec<u8> {
    acme_skill_with(version, signer, |_| {})
}

/// [`acme_skill`] with its manifest changed by `edit` before signing.
pub fn acme_skill_with(
    version: u64,
    signer: u8,
    edit: impl FnOnce(&mut edgenlu_trust::manifest::Manifest),
) -> Vec<u8> {
    let mut m = edgenlu_trust::dev::intents_manifest(
        edgenlu::bundled::DEFAULT_ENCODER,
        tiny_index(),
        version,
    );
    m.publisher = "acme".into();
    edit(&mut m);
    let component = edgenlu::bundled::components::SKILL_INTENTS.bytes;
    edgenlu_trust::skillfile::sign(component, &m.to_bytes().unwrap(), &test_key(signer)).unwrap()
}

/// A fresh device store called `tag`: the real models linked, the tests' datastore copied
/// in, acme trusted.
pub fn fresh_device(tag: &str) -> ModelStore {
    require_model(edgenlu::bundled::DEFAULT_ENCODER);
    let index = tiny_index();
    let device = temp_store(tag);
    device
        .import_file(
            index,
            &store().path_for(index).unwrap(),
            edgenlu_models::store::Import {
                replace: None,
                take_file: false,
                source: "edgenlu-tests",
            },
        )
        .unwrap();
    trust_acme(device.root());
    device
}
