//! Build-time signing of the bundled `intents` skill with edgenlu's public development key,
//! in the skill-file format of `host/src/trust/skillfile.rs` (a test checks the two agree:
//! `tests/tests/trust.rs`, `the_build_signs_the_bundled_skill_with_the_dev_key`). Devices
//! trust this key only after `edgenlu trust add --dev`.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The manifest of the bundled skill: `dev::intents_manifest(DEFAULT_ENCODER, DEFAULT_INDEX, 1)`.
const MANIFEST: &str = r#"{"format":1,"name":"intents","version":1,"publisher":"edgenlu-dev","models":["all-minilm-l6-v2.q8_0","snips-intents"],"tokenizer":{"component":"wordpiece","model":"all-minilm-l6-v2.q8_0"},"config":{"encoder":"all-minilm-l6-v2.q8_0","index":"snips-intents"},"capabilities":[],"budgets":{},"health":[{"text":"play music by the beatles on spotify","intent":"PlayMusic"},{"text":"what is the weather forecast for london","intent":"GetWeather"},{"text":"book a table for two at an italian restaurant","intent":"BookRestaurant"}]}"#;

fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn custom_section(out: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut body = Vec::new();
    leb(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    out.push(0);
    leb(out, body.len() as u32);
    out.extend_from_slice(&body);
}

/// `component` with the manifest section and the development publisher's signature.
pub fn signed_intents(component: &[u8]) -> Vec<u8> {
    let seed: [u8; 32] =
        Sha256::digest("edgenlu development key, public, never trust in production: publisher")
            .into();
    let key = SigningKey::from_bytes(&seed);
    let mut out = component.to_vec();
    custom_section(&mut out, "edgenlu-manifest", MANIFEST.as_bytes());
    let mut msg = b"edgenlu skill signature v1\n".to_vec();
    msg.extend_from_slice(&Sha256::digest(&out));
    let mut record = vec![1u8];
    record.extend_from_slice(&Sha256::digest(key.verifying_key().as_bytes())[..8]);
    record.extend_from_slice(&key.sign(&msg).to_bytes());
    custom_section(&mut out, "edgenlu-signature", &record);
    out
}
