//! The decoder families beyond llama (qwen2, qwen3, gemma3) against llama.cpp: small
//! random-weight GGUFs of each, written as llama.cpp's converter lays that family out, and
//! llama.cpp's first-step logits and greedy tokens on fixed token sequences
//! (scripts/golden/arch_gguf.py). Each file is loaded through the normal loading path
//! ([`Llama::new`]) and run on the kernel variant of `EDGENLU_KERNELS`; and, put in a model
//! store, decoded by a guest written against the standard `wasi:nn` alone.

use edgenlu::bundled::{chat_limits, components, embedded};
use edgenlu::{ComponentSpec, Grants};
use edgenlu_kernels::matmul::Activations;
use edgenlu_models::llama::{logit_error, median_and_worst};
use edgenlu_models::store::Import;
use edgenlu_models::{Architecture, GgufFile, Llama};
use edgenlu_tests::{golden_lines, golden_path, runtime_over, temp_store};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The pass with f32 activations against llama.cpp on the f32 file (f32 KV cache): max |Δ|
/// over the vocabulary in logits, as the llama decoder's f32 pass is held to a float
/// reference (tests/tests/generate.rs). Only f32 summation order differs (measured: at most
/// 2.3e-5 on qwen2 and qwen3).
const EXACT_LOGIT_TOL: f32 = 1e-3;

/// The same for gemma3, whose FFN gate is GELU: ggml's CPU GELU looks its result up in an f16
/// table by the input rounded to f16 (`GGML_GELU_FP16`), about 5e-4 relative per activation,
/// where the pass computes the tanh form in f32. Measured 5.4e-3 to 7.8e-3 logits (about
/// 2.5e-3 logit std); the pass with that table emulated gives 2e-4 to 2e-3. Ignoring the
/// sliding window or the sliding layers' rope base instead misses by 4 to 12 logits.
const GELU_TABLE_LOGIT_TOL: f32 = 0.02;

/// What the f32 passes of `arch` are held to against llama.cpp.
fn exact_tolerance(arch: Architecture) -> f32 {
    match arch {
        Architecture::Gemma3 => GELU_TABLE_LOGIT_TOL,
        _ => EXACT_LOGIT_TOL,
    }
}

/// On the q8_0 files, the default (fast) pass's error against llama.cpp's f32 logits, as max
/// |Δ| in logit standard deviations, relative to llama.cpp's own q8_0 error (both quantize
/// activations to q8_0 blocks; llama.cpp also keeps an f16 KV cache), held to the ratios of
/// the llama decoder's fast pass (tests/tests/generate.rs): the median over every sequence
/// at most this multiple of llama.cpp's median (measured 0.82)...
const MEDIAN_RATIO: f64 = 1.25;
/// ...and each sequence at most this multiple of llama.cpp's error on it (measured 0.56 to
/// 1.14 on every kernel variant).
const WORST_RATIO: f64 = 2.0;

/// Where the fast pass and llama.cpp's q8_0 run choose different greedy tokens, the f32 pass
/// must rate the two within this many logits (tests/tests/generate.rs's near-tie bound).
const NEAR_TIE_TOL: f32 = 1.0;

const GOLDEN: &str = "arch_logits.jsonl";

#[derive(serde::Deserialize)]
struct Golden {
    architecture: String,
    /// "f32" or "q8_0".
    weights: String,
    gguf: String,
    prompt_ids: Vec<u32>,
    first_logits: Vec<f32>,
    greedy_ids: Vec<u32>,
    /// After the prompt and every greedy token, each of those fed alone through the cache.
    last_logits: Vec<f32>,
}

/// The logits after `prompt` and then each of `decoded` one pass at a time (decode steps
/// through the cache, as in generation).
fn decoded_logits(model: &Llama, prompt: &[u32], decoded: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(prompt.len() + decoded.len()).unwrap();
    let mut logits = vec![0f32; model.config().vocab];
    let steps = std::iter::once(prompt).chain(decoded.chunks(1));
    for tokens in steps {
        model
            .forward(tokens, &mut cache, &mut logits, &|| false)
            .unwrap();
    }
    logits
}

fn model(gguf: &str) -> Llama {
    let file = GgufFile::open(&golden_path(gguf)).unwrap();
    Llama::new(Arc::new(file)).unwrap_or_else(|e| panic!("{gguf}: {e}"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// The golden rows of `weights` ("f32" or "q8_0"), after checking that every family beyond
/// llama is there.
fn rows(weights: &str) -> Vec<Golden> {
    let rows: Vec<Golden> = golden_lines(GOLDEN);
    let families: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.weights == weights)
        .map(|r| r.architecture.as_str())
        .collect();
    assert_eq!(
        families,
        BTreeSet::from(["gemma3", "qwen2", "qwen3"]),
        "{weights}"
    );
    rows.into_iter().filter(|r| r.weights == weights).collect()
}

/// The f32 files: the f32-activation pass and the default pass (f32 weights keep f32
/// activations) give llama.cpp's first-step logits within [`exact_tolerance`], its greedy
/// tokens exactly, and its logits of the last decode step (several positions on through the
/// KV cache, past gemma3's window) within the same tolerance.
#[test]
fn f32_families_match_llama_cpp() {
    let variant = edgenlu_kernels::active_variant();
    for g in rows("f32") {
        let exact = model(&g.gguf).with_activations(Activations::F32);
        let fast = model(&g.gguf);
        let arch = Architecture::from_name(&g.architecture).unwrap();
        assert_eq!(exact.config().architecture, arch);
        let what = format!("{} ({} ids)", g.gguf, g.prompt_ids.len());
        for (mode, m) in [("f32 activations", &exact), ("default", &fast)] {
            let logits = m.logits_after(&g.prompt_ids).unwrap();
            let diff = max_abs_diff(&logits, &g.first_logits);
            let (max, rms) = logit_error(&logits, &g.first_logits);
            eprintln!(
                "{variant} {what} {mode}: max |Δ| {diff:.2e} logits = {max:.2e} std (rms {rms:.2e})"
            );
            assert!(
                diff <= exact_tolerance(arch),
                "{what} {mode}: max |Δ| {diff}"
            );
            let ids = m.greedy(&g.prompt_ids, g.greedy_ids.len()).unwrap();
            assert_eq!(ids, g.greedy_ids, "{what} {mode}: greedy tokens");
            let last = decoded_logits(m, &g.prompt_ids, &g.greedy_ids);
            let diff = max_abs_diff(&last, &g.last_logits);
            eprintln!("{variant} {what} {mode}: last decode step max |Δ| {diff:.2e} logits");
            assert!(
                diff <= exact_tolerance(arch),
                "{what} {mode}: last step max |Δ| {diff}"
            );
        }
    }
}

/// The q8_0 files: the default pass (q8_0 activations, as ggml) is as far from llama.cpp's
/// f32 logits as llama.cpp's own q8_0 run, within [`MEDIAN_RATIO`] and [`WORST_RATIO`], and
/// its greedy tokens are llama.cpp's q8_0 ones, or part from them only at a near-tie of the
/// f32 pass.
#[test]
fn q8_0_families_match_llama_cpp() {
    let variant = edgenlu_kernels::active_variant();
    let f32_rows = rows("f32");
    let (mut ours_all, mut cpp_all) = (Vec::new(), Vec::new());
    for g in rows("q8_0") {
        let reference = f32_rows
            .iter()
            .find(|r| r.architecture == g.architecture && r.prompt_ids == g.prompt_ids)
            .expect("the f32 row of the same sequence");
        let fast = model(&g.gguf);
        let what = format!("{} ({} ids)", g.gguf, g.prompt_ids.len());
        let logits = fast.logits_after(&g.prompt_ids).unwrap();
        let (ours, ours_rms) = logit_error(&logits, &reference.first_logits);
        let (cpp, cpp_rms) = logit_error(&g.first_logits, &reference.first_logits);
        eprintln!(
            "{variant} {what}: max |Δ| from llama.cpp f32 {ours:.4} std (rms {ours_rms:.4}); llama.cpp q8_0 {cpp:.4} (rms {cpp_rms:.4})"
        );
        assert!(
            ours <= WORST_RATIO * cpp,
            "{what}: {ours} vs llama.cpp {cpp}"
        );
        ours_all.push(ours);
        cpp_all.push(cpp);
        let ids = fast.greedy(&g.prompt_ids, g.greedy_ids.len()).unwrap();
        let same = ids
            .iter()
            .zip(&g.greedy_ids)
            .take_while(|(a, b)| a == b)
            .count();
        if same < ids.len() {
            let exact = model(&reference.gguf).with_activations(Activations::F32);
            let prefix: Vec<u32> = g.prompt_ids.iter().chain(&ids[..same]).copied().collect();
            let logits = exact.logits_after(&prefix).unwrap();
            let tie = (logits[ids[same] as usize] - logits[g.greedy_ids[same] as usize]).abs();
            eprintln!("{what}: parts from llama.cpp at token {same}, f32 logits {tie:.3} apart");
            assert!(tie <= NEAR_TIE_TOL, "{what}: token {same}, {tie} apart");
        }
    }
    let (ours, cpp) = (median_and_worst(&ours_all).0, median_and_worst(&cpp_all).0);
    eprintln!(
        "{variant}: q8_0 max |Δ| from llama.cpp f32 over {} sequences, median {ours:.4} std; llama.cpp q8_0 median {cpp:.4}",
        ours_all.len()
    );
    assert!(
        ours <= MEDIAN_RATIO * cpp,
        "median {ours} vs llama.cpp {cpp}"
    );
}

/// The f32 files put in a (temporary) model store and granted to the guest written against
/// the standard `wasi:nn` alone (guest/wasi-nn-example), which loads each by name and decodes
/// greedily one `compute` per token: llama.cpp's greedy tokens.
#[test]
fn wasi_nn_guest_decodes_every_family() {
    let store = temp_store("architectures");
    let rows = rows("f32");
    let names: BTreeSet<&str> = rows.iter().map(|g| g.gguf.as_str()).collect();
    for name in &names {
        let import = Import {
            replace: None,
            take_file: false,
            source: "scripts/golden/arch_gguf.py",
        };
        store
            .import_file(name, &golden_path(name), import)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let guest = runtime_over(store)
        .load_nn_component(
            components::WASI_NN_EXAMPLE.name,
            ComponentSpec {
                source: embedded(components::WASI_NN_EXAMPLE),
                grants: Grants {
                    models: names.iter().map(|n| n.to_string()).collect(),
                    config: Default::default(),
                    limits: chat_limits(),
                    generate: true,
                },
            },
        )
        .expect("loading the wasi:nn example");
    for g in &rows {
        let count = g.greedy_ids.len() as u32;
        let ids = guest
            .generate(&g.gguf, &g.prompt_ids, count, &[])
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {e}", g.gguf));
        assert_eq!(ids, g.greedy_ids, "{} ({} ids)", g.gguf, g.prompt_ids.len());
    }
}
