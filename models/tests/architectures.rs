//! Loading the decoder families (llama, qwen2, qwen3, gemma3) from small GGUFs written here:
//! what each reads from its metadata and tensors, that the pass runs on each, and the typed
//! refusals of what is missing or not implemented. Their logits against llama.cpp are checked
//! in tests/tests/architectures.rs.

use std::sync::Arc;

use edgenlu_kernels::DType;
use edgenlu_models::architecture::{Architecture, SlidingWindow};
use edgenlu_models::{GgufFile, GgufWriter, Llama, MetaValue, ModelError};

const DIM: usize = 32;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
/// Not DIM / HEADS: q is wider than the residual stream, as in Qwen3 and Gemma 3.
const HEAD_DIM: usize = 16;
const FFN: usize = 48;
/// Seven layers, so gemma3 has sliding layers on both sides of its global layer 5.
const LAYERS: usize = 7;
const VOCAB: usize = 40;
const WINDOW: u32 = 4;

/// A file's metadata and f32 tensors before they are written, to edit.
struct Parts {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<(String, Vec<usize>)>,
}

impl Parts {
    /// A complete `arch` decoder with the constants above.
    fn of(arch: &str) -> Parts {
        Parts::with_layers(arch, LAYERS)
    }

    /// [`Parts::of`] with `layers` blocks.
    fn with_layers(arch: &str, layers: usize) -> Parts {
        let key = |k: &str| format!("{arch}.{k}");
        let mut metadata = vec![
            (
                "general.architecture".into(),
                MetaValue::String(arch.into()),
            ),
            (key("context_length"), MetaValue::U32(64)),
            (key("embedding_length"), MetaValue::U32(DIM as u32)),
            (key("block_count"), MetaValue::U32(layers as u32)),
            (key("feed_forward_length"), MetaValue::U32(FFN as u32)),
            (key("attention.head_count"), MetaValue::U32(HEADS as u32)),
            (
                key("attention.head_count_kv"),
                MetaValue::U32(KV_HEADS as u32),
            ),
            (key("attention.key_length"), MetaValue::U32(HEAD_DIM as u32)),
            (
                key("attention.layer_norm_rms_epsilon"),
                MetaValue::F32(1e-6),
            ),
            (key("rope.freq_base"), MetaValue::F32(1e6)),
        ];
        if arch == "gemma3" {
            metadata.push((key("attention.sliding_window"), MetaValue::U32(WINDOW)));
        }
        let (q_cols, kv_cols) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
        let mut tensors = vec![
            ("token_embd.weight".to_string(), vec![VOCAB, DIM]),
            ("output_norm.weight".to_string(), vec![DIM]),
        ];
        for i in 0..layers {
            let mut add = |what: &str, shape: &[usize]| {
                tensors.push((format!("blk.{i}.{what}"), shape.to_vec()));
            };
            add("attn_norm.weight", &[DIM]);
            add("attn_q.weight", &[q_cols, DIM]);
            add("attn_k.weight", &[kv_cols, DIM]);
            add("attn_v.weight", &[kv_cols, DIM]);
            add("attn_output.weight", &[DIM, q_cols]);
            add("ffn_norm.weight", &[DIM]);
            add("ffn_gate.weight", &[FFN, DIM]);
            add("ffn_up.weight", &[FFN, DIM]);
            add("ffn_down.weight", &[DIM, FFN]);
            if arch == "qwen2" {
                add("attn_q.bias", &[q_cols]);
                add("attn_k.bias", &[kv_cols]);
                add("attn_v.bias", &[kv_cols]);
            }
            if arch == "qwen3" || arch == "gemma3" {
                add("attn_q_norm.weight", &[HEAD_DIM]);
                add("attn_k_norm.weight", &[HEAD_DIM]);
            }
            if arch == "gemma3" {
                add("post_attention_norm.weight", &[DIM]);
                add("post_ffw_norm.weight", &[DIM]);
            }
        }
        Parts { metadata, tensors }
    }

    fn set(mut self, key: &str, value: MetaValue) -> Parts {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.into(), value));
        self
    }

    fn without_key(mut self, key: &str) -> Parts {
        self.metadata.retain(|(k, _)| k != key);
        self
    }

    fn without_tensor(mut self, name: &str) -> Parts {
        self.tensors.retain(|(n, _)| n != name);
        self
    }

    /// The file, its values small and varied (norm weights near 1) so the pass's numbers stay
    /// finite and distinct, loaded as a decoder.
    fn load(self) -> Result<Llama, ModelError> {
        let mut w = GgufWriter::new();
        for (k, v) in self.metadata {
            w.add_metadata(k, v);
        }
        for (t, (name, shape)) in self.tensors.into_iter().enumerate() {
            let len: usize = shape.iter().product();
            let base = if shape.len() == 1 { 1.0 } else { 0.0 };
            let data: Vec<f32> = (0..len)
                .map(|i| base + 0.3 * ((i * 7 + t * 13) as f32 * 0.37).sin())
                .collect();
            w.add_tensor(
                name,
                DType::F32,
                &shape,
                bytemuck::cast_slice(&data).to_vec(),
            )
            .unwrap();
        }
        Llama::new(Arc::new(
            GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap(),
        ))
    }
}

/// The logits after 9 tokens then 1 more (through the cache).
fn run(model: &Llama) -> Vec<f32> {
    let mut cache = model.new_cache(10).unwrap();
    let mut logits = vec![0f32; model.config().vocab];
    let prompt: Vec<u32> = (0..9).map(|i| (i * 5 + 1) % VOCAB as u32).collect();
    model
        .forward(&prompt, &mut cache, &mut logits, &|| false)
        .unwrap();
    model
        .forward(&[3], &mut cache, &mut logits, &|| false)
        .unwrap();
    assert_eq!(cache.len(), 10);
    logits
}

#[test]
fn every_family_loads_with_its_settings_and_runs() {
    for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
        let model = Parts::of(arch)
            .load()
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
        let c = model.config();
        assert_eq!(c.architecture, Architecture::from_name(arch).unwrap());
        assert_eq!(
            (c.head_dim, c.q_cols(), c.kv_cols()),
            (16, 64, 32),
            "{arch}"
        );
        assert_eq!(
            (c.vocab, c.layers, c.rope_base),
            (VOCAB, LAYERS, 1e6),
            "{arch}"
        );
        assert_eq!(c.attention_scale, 0.25, "{arch}: 1/√head_dim");
        // The cache holds kv heads × head dim per position and layer, not dim.
        let cache = (LAYERS * 10 * 32 * 2 * 4) + VOCAB * 4;
        assert_eq!(c.generation_bytes(10), Some(cache), "{arch}");
        let logits = run(&model);
        assert!(logits.iter().all(|l| l.is_finite()), "{arch}");
        let spread = logits.iter().fold(0f32, |m, l| m.max(l.abs()));
        assert!(spread > 1e-3, "{arch}: logits {spread}");
    }
    let gemma = Parts::of("gemma3").load().unwrap();
    let window = gemma.config().sliding_window.unwrap();
    assert_eq!(
        window,
        SlidingWindow {
            window: WINDOW as usize,
            period: 6,
            rope_base: 10_000.0
        }
    );
    let slides: Vec<bool> = (0..LAYERS).map(|l| window.slides(l)).collect();
    assert_eq!(slides, [true, true, true, true, true, false, true]);
}

#[test]
fn gemma3_27b_scales_attention_by_dim_over_heads() {
    // llama.cpp knows Gemma 3 27B by its 62 layers and scales its scores by
    // 1/√(dim / heads) (its query_pre_attn_scalar) instead of 1/√head_dim; the pass scales q.
    let big = Parts::with_layers("gemma3", 62).load().unwrap();
    assert_eq!(
        big.config().attention_scale,
        1.0 / ((DIM / HEADS) as f32).sqrt()
    );
    let logits = run(&big);
    assert!(logits.iter().all(|l| l.is_finite()));
    let qwen3 = Parts::with_layers("qwen3", 62).load().unwrap();
    assert_eq!(qwen3.config().attention_scale, 0.25, "qwen3: 1/√head_dim");
}

#[test]
fn each_family_differs_from_the_llama_pass() {
    // The same tensors run as llama and as another family must give other logits: each
    // family's steps (rope layout, biases, norms, activation, window) are in the pass.
    let llama = run(&Parts::of("llama").load().unwrap());
    let same_tensors_as_llama =
        Parts::of("llama").set("general.architecture", MetaValue::String("qwen3".into()));
    let qwen3_keys = Parts::of("qwen3");
    let neox = Parts {
        metadata: qwen3_keys.metadata,
        tensors: same_tensors_as_llama.tensors,
    };
    // qwen3 needs its q/k norms; without them only the rope layout differs from llama.
    let e = neox.load().unwrap_err();
    assert!(
        matches!(&e, ModelError::Weight { name, .. } if name == "blk.0.attn_q_norm.weight"),
        "{e}"
    );
    for arch in ["qwen2", "qwen3", "gemma3"] {
        let logits = run(&Parts::of(arch).load().unwrap());
        let diff = logits
            .iter()
            .zip(&llama)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff > 1e-3, "{arch} gives llama's logits");
    }
}

/// `parts` must be refused with a message containing every one of `words`.
fn refused(parts: Parts, words: &[&str]) -> ModelError {
    let e = parts.load().unwrap_err();
    let message = e.to_string();
    for w in words {
        assert!(message.contains(w), "{message:?} does not name {w:?}");
    }
    e
}

#[test]
fn missing_family_tensors_are_refused_by_name() {
    for (arch, tensor) in [
        ("qwen2", "blk.1.attn_k.bias"),
        ("qwen3", "blk.2.attn_k_norm.weight"),
        ("gemma3", "blk.0.post_ffw_norm.weight"),
        ("gemma3", "blk.6.post_attention_norm.weight"),
        ("gemma3", "blk.3.attn_q_norm.weight"),
    ] {
        let e = refused(Parts::of(arch).without_tensor(tensor), &[tensor, "missing"]);
        assert!(
            matches!(&e, ModelError::Weight { name, .. } if name == tensor),
            "{e:?}"
        );
    }
}

#[test]
fn unimplemented_variants_are_refused_naming_them() {
    let unsupported = |parts: Parts, words: &[&str]| {
        let e = refused(parts, words);
        assert!(matches!(e, ModelError::Unsupported { .. }), "{e:?}");
    };
    unsupported(
        Parts::of("gemma3").set("gemma3.final_logit_softcapping", MetaValue::F32(30.0)),
        &["gemma3", "final_logit_softcapping"],
    );
    unsupported(
        Parts::of("gemma3").set("gemma3.attn_logit_softcapping", MetaValue::F32(50.0)),
        &["attn_logit_softcapping"],
    );
    unsupported(
        Parts::of("gemma3").without_key("gemma3.attention.sliding_window"),
        &["gemma3.attention.sliding_window"],
    );
    unsupported(
        Parts::of("qwen2").set("qwen2.rope.scaling.type", MetaValue::String("yarn".into())),
        &["qwen2", "rope scaling", "yarn"],
    );
    unsupported(
        Parts::of("gemma3").set("gemma3.rope.scaling.factor", MetaValue::F32(8.0)),
        &["rope scaling by 8"],
    );
    unsupported(
        Parts::of("qwen3").set("qwen3.rope.dimension_count", MetaValue::U32(8)),
        &["partial rope"],
    );
    unsupported(
        Parts::of("llama").set("llama.attention.value_length", MetaValue::U32(8)),
        &["values of 8"],
    );
    // A neutral setting is no variant.
    Parts::of("qwen2")
        .set("qwen2.rope.scaling.type", MetaValue::String("none".into()))
        .set("qwen2.rope.scaling.factor", MetaValue::F32(1.0))
        .load()
        .unwrap();
}

#[test]
fn malformed_family_metadata_is_a_metadata_error() {
    let e = refused(
        Parts::of("qwen3").set(
            "qwen3.attention.head_count_kv",
            MetaValue::String("2".into()),
        ),
        &["qwen3.attention.head_count_kv"],
    );
    assert!(matches!(e, ModelError::Metadata(_)), "{e:?}");
    let e = refused(
        Parts::of("gemma3").without_key("gemma3.feed_forward_length"),
        &["gemma3.feed_forward_length"],
    );
    assert!(matches!(e, ModelError::Metadata(_)), "{e:?}");
    let e = refused(
        Parts::of("qwen2").set("qwen2.rope.freq_base", MetaValue::String("x".into())),
        &["qwen2.rope.freq_base"],
    );
    assert!(matches!(e, ModelError::Metadata(_)), "{e:?}");
}
