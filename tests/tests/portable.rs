//! The `edgenlu` binary carries its components: copied alone into an empty directory on
//! another path and run from there, it answers `run`, `generate`, `serve`, `install` and `ask`
//! against the model store. The store root is a temporary directory whose `models/` links to
//! the real store's, so nothing in the device's own trust or skill store changes.

use edgenlu_tests::{built_binary, free_addr, http, store, tiny_index, wait_ready};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A directory on another path than the checkout: the copied binary, an empty working
/// directory, and a store root sharing the real store's models and compiled components.
struct Elsewhere {
    root: PathBuf,
    bin: PathBuf,
    home: PathBuf,
    work: PathBuf,
}

impl Elsewhere {
    fn new() -> Elsewhere {
        let root = std::env::temp_dir().join(format!("edgenlu-portable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (bin_dir, home, work) = (root.join("bin"), root.join("home"), root.join("work"));
        for dir in [&bin_dir, &home, &work] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let bin = bin_dir.join("edgenlu");
        std::fs::copy(built_binary(), &bin).expect("copying the binary");
        let real = store().root().to_path_buf();
        std::os::unix::fs::symlink(real.join("models"), home.join("models")).unwrap();
        std::fs::copy(real.join("index.json"), home.join("index.json")).unwrap();
        std::fs::create_dir_all(real.join("cache")).unwrap();
        std::os::unix::fs::symlink(real.join("cache"), home.join("cache")).unwrap();
        Elsewhere {
            root,
            bin,
            home,
            work,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.work)
            .env("EDGENLU_HOME", &self.home)
            .env_remove("EDGENLU_UPLINK_URL");
        cmd
    }

    /// Runs `edgenlu args...` to completion; fails the test unless it succeeds.
    fn run(&self, args: &[&str]) -> String {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(args).output().expect("running edgenlu");
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        assert!(
            status.success(),
            "edgenlu {args:?} failed ({status}):\n{stdout}\n{}",
            String::from_utf8_lossy(&stderr)
        );
        stdout
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The binary names no component file of the build: it carries the components themselves.
#[test]
fn the_binary_holds_no_path_into_the_build() {
    let bytes = std::fs::read(built_binary()).unwrap();
    let needle = b"/out/skill-intents.component.wasm";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the binary still names a component file in the build's OUT_DIR"
    );
}

#[test]
fn the_binary_runs_alone_from_another_directory() {
    let index = tiny_index();
    let place = Elsewhere::new();
    let weather = "what is the weather forecast for london";

    let out = place.run(&["run", "--no-phrase", "--index", index, weather]);
    assert!(out.contains("\"GetWeather\""), "{out}");

    let out = place.run(&["generate", "--chat", "--max-tokens", "8", "Say hello."]);
    assert!(!out.trim().is_empty(), "generate printed nothing");

    place.run(&["trust", "add", "--dev"]);
    place.run(&["sign", "--dev-intents", "--index", index, "-o", "dev.wasm"]);
    let out = place.run(&["install", "dev.wasm"]);
    assert!(out.contains("health check passed"), "{out}");
    let out = place.run(&["ask", "intents", weather]);
    assert!(out.contains("\"GetWeather\""), "{out}");

    let addr = free_addr();
    let mut server = place
        .command(&["serve", "--listen", &addr.to_string(), "--index", index])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting edgenlu serve");
    wait_ready(&mut server, addr);
    let body = serde_json::json!({ "text": weather }).to_string();
    let (status, answer) = http(addr, "POST", "/v1/nlu", body.as_bytes());
    // SAFETY: signals the child this test started and still owns (not yet waited for).
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = server.wait().expect("waiting for edgenlu serve");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"GetWeather\""), "{answer}");
    assert!(stopped.success(), "serve stopped with {stopped}");
}
