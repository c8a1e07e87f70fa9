//! Sequences of host calls (tensors, models, kernels) with arbitrary arguments and handles,
//! decoded from the input by `edgenlu::fuzzing`: every call must end in a value or a typed
//! error; a panic anywhere in the host is a finding.
#![no_main]

use edgenlu::fuzzing::HostCallHarness;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static HARNESS: OnceLock<HostCallHarness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("edgenlu-fuzz-{}", std::process::id()));
        HostCallHarness::new(&dir)
    });
    harness.run(data);
});
