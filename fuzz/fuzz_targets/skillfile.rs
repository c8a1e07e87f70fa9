//! The skill file's section framing and manifest parser on arbitrary bytes: a typed error or
//! a parsed, validated manifest; never a panic. (Signatures cannot be forged by a fuzzer, so
//! what it reaches is everything before the signature check.)
#![no_main]

use edgenlu_device::installed::ManifestGrants;
use edgenlu_trust::manifest::Manifest;
use edgenlu_trust::skillfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = skillfile::sections(data);
    let _ = skillfile::strip(data);
    if let Ok(unverified) = skillfile::parse(data) {
        if let Ok(manifest) = Manifest::parse(unverified.manifest) {
            if manifest.validate().is_ok() {
                let _ = manifest.limits();
                let _ = manifest.to_bytes();
            }
        }
    }
    // The manifest parser on its own too: it sees attacker bytes before any signature check.
    if let Ok(manifest) = Manifest::parse(data) {
        let _ = manifest.validate();
    }
});
