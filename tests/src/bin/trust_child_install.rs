//! The child process the trust tests' kill -9 and full-disk cases run (tests/tests/trust.rs):
//! it installs one skill file into a skill store and exits 0, or prints the error and exits 3.
//! Environment: `EDGENLU_TRUST_CHILD_ROOT` (store root), `EDGENLU_TRUST_CHILD_FILE` (skill
//! file), optionally `EDGENLU_TRUST_CHILD_FSIZE` (RLIMIT_FSIZE in bytes) and
//! `EDGENLU_TRUST_CHILD_CHECKED` (install with the health check).

use edgenlu_device::installed::InstalledSkills;
use edgenlu_trust::skills::SkillStore;
use edgenlu_trust::unix_now;
use std::path::Path;

fn main() {
    let (Some(root), Some(file)) = (
        std::env::var_os("EDGENLU_TRUST_CHILD_ROOT"),
        std::env::var_os("EDGENLU_TRUST_CHILD_FILE"),
    ) else {
        eprintln!("set EDGENLU_TRUST_CHILD_ROOT and EDGENLU_TRUST_CHILD_FILE");
        std::process::exit(2);
    };
    if let Some(limit) = std::env::var("EDGENLU_TRUST_CHILD_FSIZE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // SAFETY: plain libc calls on this single-threaded child before it writes anything;
        // ignoring SIGXFSZ makes an oversized write fail with EFBIG instead of killing us.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
    }
    let bytes = std::fs::read(file).expect("reading the skill file");
    let skills = SkillStore::at(Path::new(&root)).expect("opening the skill store");
    // Markers for the parent: kills are timed from INSTALLING, and one after INSTALLED must
    // find the new version. Each println! is flushed line by line before we go on.
    let checked = std::env::var_os("EDGENLU_TRUST_CHILD_CHECKED").is_some();
    let rt = checked.then(edgenlu_tests::runtime);
    println!("INSTALLING");
    let result = match &rt {
        Some(rt) => skills
            .install_checked(rt, &bytes, unix_now())
            .map_err(|e| e.to_string()),
        None => skills
            .install(&bytes, unix_now())
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(_) => {
            println!("INSTALLED");
            std::process::exit(0)
        }
        Err(e) => {
            println!("INSTALL-ERROR: {e}");
            std::process::exit(3)
        }
    }
}
