//! [fleet]: a simulated fleet of 8 devices (separate stores with fixed device ids, each
//! `edgenlu sync` its own process with a deadline) following one channel in a real registry
//! (Debian's `docker-registry`): v1 at 100 % reaches all; v2 at 50 % reaches exactly the
//! devices the documented cohort hash puts in its cohort (the test computes it itself) while
//! the registry is killed mid-rollout and started again on the same storage (the device that
//! synced while it was down fails typed, unchanged and answering); a v3 whose health check
//! cannot pass, at 100 %, is rolled back on every device, each device's `status --json`
//! saying why, and not tried again.

use edgenlu_fleet::client::RegistryClient;
use edgenlu_fleet::push::push_skill;
use edgenlu_fleet::reference::ArtifactRef;
use edgenlu_models::store::ModelStore;
use edgenlu_tests::{acme_skill, acme_skill_with, edgenlu_within, fresh_device, Ran, Registry};
use edgenlu_trust::manifest::Probe;
use edgenlu_trust::skills::SkillStore;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Devices in the simulated fleet, and v2's rollout percentage: 8 at 50 % by default (the
/// size `.ci/run` affords); `EDGENLU_FLEET_DEVICES` and `EDGENLU_FLEET_ROLLOUT` set others
/// (the fleet: 50 at 20 %).
fn fleet_size() -> (usize, u8) {
    let var = |name: &str, default: usize| {
        std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
    };
    let devices = var("EDGENLU_FLEET_DEVICES", 8).max(2);
    let rollout = var("EDGENLU_FLEET_ROLLOUT", 50).min(100) as u8;
    (devices, rollout)
}

/// Longest one `edgenlu` process may run before the test kills it and fails.
const DEADLINE: Duration = Duration::from_secs(120);

/// One device: its store and its fixed id.
struct Device {
    store: ModelStore,
    id: String,
}

impl Device {
    /// Runs `edgenlu args...` on this device's store, killed and failed past [`DEADLINE`].
    fn run(&self, args: &[&str]) -> Ran {
        let start = std::time::Instant::now();
        let ran = edgenlu_within(&self.store, args, DEADLINE);
        eprintln!("{}: {} took {:?}", self.id, args[0], start.elapsed());
        ran
    }

    /// One `edgenlu sync` of `channel` (2 attempts per request, so a dead registry is given
    /// up on quickly), reporting its status to `acme/status` in the channel's registry.
    fn sync(&self, channel: &str) -> Ran {
        let registry = channel.split('/').next().unwrap();
        self.run(&[
            "sync",
            "--channel",
            channel,
            "--device-id",
            &self.id,
            "--attempts",
            "2",
            "--report",
            &format!("{registry}/acme/status"),
        ])
    }

    /// `edgenlu status --json`, parsed.
    fn status(&self) -> serde_json::Value {
        let ran = self.run(&["status", "--json"]);
        assert!(ran.ok, "status failed: {}", ran.stderr);
        serde_json::from_str(&ran.stdout).expect("status --json prints JSON")
    }

    /// The version of `intents` installed.
    fn intents_version(&self) -> u64 {
        let skills = SkillStore::at(self.store.root()).unwrap();
        skills
            .state("intents")
            .unwrap()
            .expect("installed")
            .current
            .version
    }

    /// Asserts the device answers through its installed skill.
    fn answers(&self) {
        let asked = self.run(&["ask", "intents", "play some jazz by miles davis"]);
        assert!(
            asked.ok && asked.stdout.contains("PlayMusic"),
            "{}",
            asked.stdout
        );
    }
}

/// The status record's entry for skill `intents`.
fn intents_entry(status: &serde_json::Value) -> &serde_json::Value {
    status["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["kind"] == "skill" && e["name"] == "intents")
        .expect("an entry for skill intents")
}

/// The status record `device_id` pushed to `acme/status` in `registry`, read from the
/// registry's own storage.
fn reported(registry: &Registry, device_id: &str) -> serde_json::Value {
    let manifest = registry.manifest("acme/status", device_id);
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.edgenlu.status.v1+json"
    );
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    serde_json::from_slice(&std::fs::read(registry.blob_file(layer)).unwrap()).unwrap()
}

/// Whether `device_id` is in the cohort of `name` at `digest` rolled out to `rollout` %, as
/// docs/fleet.md defines it (computed here, not by the code under test).
fn in_cohort(device_id: &str, name: &str, digest: &str, rollout: u64) -> bool {
    let hash = Sha256::digest(format!("{device_id}\n{name}\n{digest}"));
    u64::from_be_bytes(hash[..8].try_into().unwrap()) % 100 < rollout
}

/// Publishes `bytes` as `acme/intents:TAG`; its manifest digest.
fn publish_skill(registry: &Registry, tag: &str, bytes: &[u8]) -> String {
    let reference = format!("{}/acme/intents:{tag}", registry.host());
    let target = ArtifactRef::parse(&reference, false).unwrap();
    push_skill(&RegistryClient::new(target).unwrap(), bytes)
        .unwrap()
        .manifest_digest
}

/// Points the channel at `acme/intents:TAG` rolled out to `rollout` %, through `edgenlu
/// channel set`; checks it printed the pinned entry.
fn set_channel(
    publisher: &Device,
    channel: &str,
    registry: &Registry,
    tag: &str,
    digest: &str,
    rollout: u8,
) {
    let skill = format!("{}/acme/intents:{tag}", registry.host());
    let rollout = rollout.to_string();
    let ran = publisher.run(&[
        "channel",
        "set",
        channel,
        "--skill",
        &skill,
        "--rollout",
        &rollout,
    ]);
    assert!(ran.ok, "channel set failed: {}", ran.stderr);
    let pinned = format!(
        "skill intents rollout {rollout}% {}/acme/intents@{digest}",
        registry.host()
    );
    assert!(ran.stdout.contains(&pinned), "{}", ran.stdout);
}

/// The simulated fleet: a registry, its channel, the devices and the publisher.
struct Fleet {
    registry: Registry,
    channel: String,
    devices: Vec<Device>,
    publisher: Device,
}

#[test]
fn a_fleet_follows_a_channel_through_a_staged_rollout_a_bad_version_and_a_registry_outage() {
    let registry = Registry::start();
    let mut fleet = Fleet {
        channel: format!("{}/acme/channel:stable", registry.host()),
        registry,
        devices: (0..fleet_size().0)
            .map(|i| Device {
                store: fresh_device(&format!("fleet-device-{i}")),
                id: format!("device-{i}"),
            })
            .collect(),
        publisher: Device {
            store: edgenlu_tests::temp_store("fleet-publisher"),
            id: "publisher".into(),
        },
    };
    let v1 = fleet.v1_reaches_every_device();
    let cohort = fleet.v2_reaches_its_cohort_across_a_registry_outage(&v1);
    fleet.v3_failing_its_health_check_is_rolled_back_everywhere(&cohort);
}

impl Fleet {
    /// v1 at 100 %: every device installs it. Its digest.
    fn v1_reaches_every_device(&self) -> String {
        let v1 = publish_skill(&self.registry, "1", &acme_skill(1, 2));
        set_channel(
            &self.publisher,
            &self.channel,
            &self.registry,
            "1",
            &v1,
            100,
        );
        for d in &self.devices {
            let ran = d.sync(&self.channel);
            assert!(ran.ok, "{}: {}", d.id, ran.stderr);
            assert_eq!(d.intents_version(), 1);
            let status = d.status();
            assert_eq!(status["device_id"], d.id.as_str());
            assert_eq!(status["result"], "ok");
            let e = intents_entry(&status);
            assert_eq!(
                (e["result"].as_str(), e["installed_version"].as_str()),
                (Some("installed"), Some("1"))
            );
            assert_eq!(e["installed_digest"], v1.as_str());
            // The same record, pushed to the registry under the device's id.
            assert_eq!(reported(&self.registry, &d.id), status);
        }
        v1
    }

    /// v2 at 50 % (or the rollout asked for), the registry killed after half the fleet synced and started again: exactly
    /// the cohort the documented hash gives ends on v2, the rest on v1. Who is in the cohort.
    fn v2_reaches_its_cohort_across_a_registry_outage(&mut self, v1: &str) -> Vec<bool> {
        let v2 = publish_skill(&self.registry, "2", &acme_skill(2, 2));
        let (devices, rollout) = fleet_size();
        set_channel(
            &self.publisher,
            &self.channel,
            &self.registry,
            "2",
            &v2,
            rollout,
        );
        let cohort: Vec<bool> = self
            .devices
            .iter()
            .map(|d| in_cohort(&d.id, "intents", &v2, rollout.into()))
            .collect();
        let members = cohort.iter().filter(|&&m| m).count();
        eprintln!("v2 at {rollout} %: {members} of {devices} devices in its cohort: {cohort:?}");
        for d in &self.devices[..devices / 2] {
            assert!(d.sync(&self.channel).ok, "{}", d.id);
        }
        self.a_sync_while_the_registry_is_down_changes_nothing();
        for d in &self.devices {
            assert!(d.sync(&self.channel).ok, "{}", d.id);
        }
        for (d, &member) in self.devices.iter().zip(&cohort) {
            let e = intents_entry(&d.status()).clone();
            assert_eq!(d.intents_version(), if member { 2 } else { 1 }, "{}", d.id);
            assert_eq!(e["in_cohort"], member, "{}", d.id);
            assert_eq!(
                e["installed_digest"],
                if member { v2.as_str() } else { v1 },
                "{}",
                d.id
            );
            let expected = if member {
                ["installed", "up-to-date"]
            } else {
                ["not-in-cohort"; 2]
            };
            assert!(
                expected.contains(&e["result"].as_str().unwrap()),
                "{}: {e}",
                d.id
            );
        }
        cohort
    }

    /// The registry killed: the next device's sync fails typed, its status says why, it keeps
    /// its version and answers; then the registry is started again on the same storage.
    fn a_sync_while_the_registry_is_down_changes_nothing(&mut self) {
        self.registry.stop();
        let down = &self.devices[self.devices.len() / 2];
        let before = version_and_digest(down);
        let ran = down.sync(&self.channel);
        assert!(!ran.ok, "a sync with the registry down must fail");
        assert!(
            ran.stderr
                .contains("could not be read; the device keeps what it has"),
            "{}",
            ran.stderr
        );
        let status = down.status();
        assert_eq!(status["result"], "failed");
        assert!(
            status["error"]
                .as_str()
                .unwrap()
                .contains("could not be read"),
            "{status}"
        );
        assert_eq!(
            down.intents_version(),
            before.0,
            "the device changed while the registry was down"
        );
        assert_eq!(intents_entry(&status)["installed_digest"], before.1);
        assert!(
            status["report_error"]
                .as_str()
                .unwrap()
                .contains("Connection refused"),
            "{status}"
        );
        down.answers();
        self.registry.restart();
    }

    /// v3 at 100 %, whose health check cannot pass: rolled back everywhere, and said why;
    /// then not tried again, by `sync` or by the agent.
    fn v3_failing_its_health_check_is_rolled_back_everywhere(&self, cohort: &[bool]) {
        let v3_bytes = acme_skill_with(3, 2, |m| {
            m.health.push(Probe {
                text: "play some jazz".into(),
                intent: "NoSuchIntent".into(),
            })
        });
        let v3 = publish_skill(&self.registry, "3", &v3_bytes);
        set_channel(
            &self.publisher,
            &self.channel,
            &self.registry,
            "3",
            &v3,
            100,
        );
        for (d, &member) in self.devices.iter().zip(cohort) {
            let had = if member { 2 } else { 1 };
            let ran = d.sync(&self.channel);
            assert!(
                !ran.ok && ran.stdout.contains("rolled back"),
                "{}: {}",
                d.id,
                ran.stdout
            );
            assert_eq!(d.intents_version(), had, "{}", d.id);
            let status = d.status();
            assert_eq!(status["result"], "partial");
            let e = intents_entry(&status);
            assert_eq!(e["result"], "rolled-back");
            assert_eq!(e["failed_digest"], v3.as_str());
            assert_eq!(e["installed_version"], had.to_string().as_str());
            let why = e["rollback_error"].as_str().unwrap();
            assert!(
                why.contains("version 3 failed its health check")
                    && why.contains("NoSuchIntent")
                    && why.contains(&format!("rolled back to version {had}")),
                "{why}"
            );
            d.answers();
        }
        // The failed digest is not tried again; the device stays as it is.
        let again = self.devices[0].sync(&self.channel);
        assert!(again.ok, "{}", again.stderr);
        let e = intents_entry(&self.devices[0].status()).clone();
        assert_eq!(e["result"], "skipped-failed");
        assert!(e["rollback_error"]
            .as_str()
            .unwrap()
            .contains("NoSuchIntent"));

        // The agent loop: two rounds, both leaving the device as it is.
        let agent = self.devices[1].run(&[
            "agent",
            "--channel",
            &self.channel,
            "--interval",
            "1",
            "--rounds",
            "2",
            "--json",
        ]);
        assert!(agent.ok, "{}", agent.stderr);
        assert_eq!(
            agent.stdout.matches("\"skipped-failed\"").count(),
            2,
            "{}",
            agent.stdout
        );
    }
}

/// The installed version of `intents` and the digest the status record says it came from.
fn version_and_digest(d: &Device) -> (u64, serde_json::Value) {
    (
        d.intents_version(),
        intents_entry(&d.status())["installed_digest"].clone(),
    )
}

/// A device with `intents` v1 installed from `channel` (at v1, 100 %) in `registry`; v2
/// published too. Returns the device and v2's digest.
fn device_on_v1(registry: &Registry, channel: &str, tag: &str) -> (Device, Device, String) {
    let device = Device {
        store: fresh_device(tag),
        id: format!("{tag}-id"),
    };
    let publisher = Device {
        store: edgenlu_tests::temp_store(&format!("{tag}-publisher")),
        id: "publisher".into(),
    };
    let v1 = publish_skill(registry, "1", &acme_skill(1, 2));
    set_channel(&publisher, channel, registry, "1", &v1, 100);
    assert!(device.sync(channel).ok);
    assert_eq!(device.intents_version(), 1);
    let v2 = publish_skill(registry, "2", &acme_skill(2, 2));
    (device, publisher, v2)
}

#[test]
fn a_serving_device_keeps_answering_while_the_agent_updates_it() {
    let registry = Registry::start();
    let channel = format!("{}/acme/channel:stable", registry.host());
    let (device, publisher, v2) = device_on_v1(&registry, &channel, "fleet-serving");
    let addr = edgenlu_tests::free_addr();
    let mut server = std::process::Command::new(edgenlu_tests::built_binary())
        .args(["serve", "--listen", &addr.to_string()])
        .env("EDGENLU_HOME", device.store.root())
        .env_remove("EDGENLU_UPLINK_URL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting edgenlu serve");
    edgenlu_tests::wait_ready(&mut server, addr);
    let version = || {
        let (_, metrics) = edgenlu_tests::http(addr, "GET", "/metrics", b"");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("edgenlu_skill_version{skill=\"intents\"} "))
            .map(str::to_string)
    };
    assert_eq!(version().as_deref(), Some("1"));

    // Questions the whole time the agent pulls, checks and switches to v2.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || answers.is_empty() {
                let body = serde_json::json!({ "text": "play some jazz by miles davis" });
                let (status, body) =
                    edgenlu_tests::http(addr, "POST", "/v1/nlu", body.to_string().as_bytes());
                assert_eq!(status, 200, "{body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                answers.push(v["response"]["intent"].as_str().unwrap_or("").to_string());
            }
            answers
        })
    };
    set_channel(&publisher, &channel, &registry, "2", &v2, 100);
    let agent = device.run(&["agent", "--channel", &channel, "--rounds", "1"]);
    assert!(
        agent.ok && agent.stdout.contains("installed version 2"),
        "{}",
        agent.stdout
    );
    // The server swaps between requests: the next ones are answered by v2.
    let start = std::time::Instant::now();
    while version().as_deref() != Some("2") {
        assert!(
            start.elapsed() < DEADLINE,
            "serve never swapped to version 2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // /metrics shows the agent's last sync, read from the device's status record.
    let (_, metrics) = edgenlu_tests::http(addr, "GET", "/metrics", b"");
    let sync_line = |result: &str| {
        format!("edgenlu_sync_last_result{{channel=\"{channel}\",result=\"{result}\"}} ")
    };
    assert!(metrics.contains(&(sync_line("ok") + "1")), "{metrics}");
    assert!(metrics.contains(&(sync_line("failed") + "0")), "{metrics}");
    assert!(
        metrics.contains(
            "edgenlu_sync_entry{kind=\"skill\",name=\"intents\",result=\"installed\",in_cohort=\"true\",rolled_back=\"false\"} 1"
        ),
        "{metrics}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = asker.join().expect("every request answered 200");
    eprintln!("{} answers during the update", answers.len());
    assert!(answers.iter().all(|a| a == "PlayMusic"), "{answers:?}");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn an_entry_of_another_kind_is_refused_and_nothing_is_installed() {
    let registry = Registry::start();
    let channel = format!("{}/acme/channel:stable", registry.host());
    let (device, publisher, v2) = device_on_v1(&registry, &channel, "fleet-kinds");
    let skill_ref = format!("{}/acme/intents:2", registry.host());
    // The publisher side refuses a skill named as a model.
    let ran = publisher.run(&["channel", "set", &channel, "--model", &skill_ref]);
    assert!(
        !ran.ok && ran.stderr.contains("not a model"),
        "{}",
        ran.stderr
    );
    // A channel file that calls the skill a flow is published as written; the device refuses it.
    let file = device.store.root().join("wrong-kind.json");
    let pinned = format!("{}/acme/intents@{v2}", registry.host());
    let wrong = serde_json::json!({ "format": 1, "entries": [
        { "kind": "flow", "name": "intents", "reference": pinned, "rollout": 100 }
    ]});
    std::fs::write(&file, wrong.to_string()).unwrap();
    let ran = publisher.run(&["channel", "set", &channel, "--file", file.to_str().unwrap()]);
    assert!(ran.ok, "{}", ran.stderr);
    let flows = SkillStore::flows_at(device.store.root()).unwrap();
    let ran = device.sync(&channel);
    assert!(
        !ran.ok && ran.stdout.contains("it is a skill, not the flow asked for"),
        "{}",
        ran.stdout
    );
    assert_eq!(device.intents_version(), 1);
    assert!(flows
        .state(edgenlu_trust::skills::FLOW_SLOT)
        .unwrap()
        .is_none());
    let status = device.status();
    assert_eq!(status["result"], "partial");
    assert_eq!(status["entries"][0]["kind"], "flow");
    assert_eq!(status["entries"][0]["result"], "failed");
    assert!(status["entries"][0]["failed_digest"].is_null());
}

/// The `clarify` example flow as acme signs it at `version`, never asking (margin 0), with a
/// health probe the device's pipeline answers with `intent`.
fn acme_flow(version: u64, intent: &str) -> Vec<u8> {
    let m = edgenlu_trust::manifest::Manifest {
        config: [("margin".to_string(), "0".to_string())].into(),
        health: vec![Probe {
            text: "play some jazz by miles davis".into(),
            intent: intent.into(),
        }],
        ..edgenlu_trust::manifest::Manifest::flow("clarify", "acme", version)
    };
    let component = edgenlu::bundled::components::FLOW_CLARIFY.bytes;
    edgenlu_trust::skillfile::sign(
        component,
        &m.to_bytes().unwrap(),
        &edgenlu_tests::test_key(2),
    )
    .unwrap()
}

#[test]
fn a_channel_installs_a_flow_checked_through_the_device_pipeline() {
    let registry = Registry::start();
    let channel = format!("{}/acme/channel:stable", registry.host());
    let device = Device {
        store: fresh_device("fleet-flow"),
        id: "fleet-flow-id".into(),
    };
    // This device lets acme ship flows.
    edgenlu_tests::acme_trust(
        device.store.root(),
        vec![edgenlu_trust::manifest::Capability::Flow],
        &["all-minilm-*", "trust-snips-*"],
        edgenlu_trust::unix_now() + edgenlu_trust::DAY_SECONDS,
    );
    let publisher = Device {
        store: edgenlu_tests::temp_store("fleet-flow-publisher"),
        id: "publisher".into(),
    };
    publish_skill(&registry, "1", &acme_skill(1, 2));
    let push = |tag: &str, bytes: &[u8]| {
        let reference = format!("{}/acme/clarify:{tag}", registry.host());
        let target = ArtifactRef::parse(&reference, false).unwrap();
        push_skill(&RegistryClient::new(target).unwrap(), bytes).unwrap();
        reference
    };
    let good = push("1", &acme_flow(1, "PlayMusic"));
    let bad = push("2", &acme_flow(2, "GetWeather"));
    let skill = format!("{}/acme/intents:1", registry.host());
    let set = |flow: &str| {
        let ran = publisher.run(&[
            "channel", "set", &channel, "--skill", &skill, "--flow", flow,
        ]);
        assert!(ran.ok, "{}", ran.stderr);
    };
    let flows = SkillStore::flows_at(device.store.root()).unwrap();
    let flow_version = || {
        flows
            .state(edgenlu_trust::skills::FLOW_SLOT)
            .unwrap()
            .map(|s| s.current.version)
    };

    set(&good);
    let ran = device.sync(&channel);
    assert!(ran.ok, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("flow clarify: installed version 1"),
        "{}",
        ran.stdout
    );
    assert_eq!(flow_version(), Some(1));
    assert_eq!(device.intents_version(), 1);

    // A flow whose probe the pipeline answers otherwise is rolled back to the one before.
    set(&bad);
    let ran = device.sync(&channel);
    assert!(!ran.ok, "{}", ran.stdout);
    assert_eq!(flow_version(), Some(1));
    let status = device.status();
    let flow = status["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "flow")
        .unwrap();
    assert_eq!(flow["result"], "rolled-back", "{flow}");
    assert_eq!(flow["installed_version"], "1");
    let why = flow["rollback_error"].as_str().unwrap();
    assert!(
        why.contains("clarify version 2 failed its health check") && why.contains("GetWeather"),
        "{why}"
    );
    assert_eq!(intents_entry(&status)["result"], "up-to-date");
}

#[test]
fn a_channel_that_is_not_one_is_refused_typed_and_the_device_is_unchanged() {
    let registry = Registry::start();
    let channel = format!("{}/acme/channel:stable", registry.host());
    let (device, _publisher, _) = device_on_v1(&registry, &channel, "fleet-forged");
    // A mistyped channel is refused before anything is written.
    let before = device.status();
    let ran = device.sync("acme/Channel::stable");
    assert!(
        !ran.ok && ran.stderr.contains("invalid reference"),
        "{}",
        ran.stderr
    );
    assert_eq!(device.status(), before);
    // Manifests no honest publisher writes, stored as they are beside the skill's blobs: a
    // channel whose layer is the skill file, and one whose layer is declared 2 MiB.
    let skill = registry.manifest("acme/intents", "2");
    let forged = |size: serde_json::Value| {
        let mut layer = skill["layers"][0].clone();
        layer["mediaType"] = "application/vnd.edgenlu.channel.v1+json".into();
        if !size.is_null() {
            layer["size"] = size;
        }
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.edgenlu.channel.v1+json",
            "config": skill["config"],
            "layers": [layer],
        })
    };
    let cases = [
        (
            "garbage",
            forged(serde_json::Value::Null),
            "is not a valid channel",
        ),
        (
            "huge",
            forged((2u64 << 20).into()),
            "a channel may have at most 1048576",
        ),
    ];
    for (tag, manifest, why) in cases {
        registry.put_manifest("acme/intents", tag, &manifest);
        let reference = format!("{}/acme/intents:{tag}", registry.host());
        let before = edgenlu_tests::tree_listing(&device.store.root().join("skills"));
        let ran = device.sync(&reference);
        assert!(!ran.ok, "{}", ran.stdout);
        assert!(
            ran.stderr.contains("could not be read") && ran.stderr.contains(why),
            "{}",
            ran.stderr
        );
        assert_eq!(
            edgenlu_tests::tree_listing(&device.store.root().join("skills")),
            before
        );
        assert_eq!(device.status()["result"], "failed");
        device.answers();
    }
}
