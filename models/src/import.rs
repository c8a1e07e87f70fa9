//! Hugging Face BERT encoder (config.json + model.safetensors + tokenizer.json / vocab.txt)
//! to GGUF, with llama.cpp's key and tensor names so the file also loads in llama.cpp.
//! The WordPiece settings llama.cpp has no keys for go under `edgenlu.tokenizer.*`.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use edgenlu_kernels::formats::{quantize, DType};
use half::{bf16, f16};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::gguf::{GgufError, GgufWriter, MetaValue};

/// llama.cpp's token types (`llama_token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;

/// Why a Hugging Face folder could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or lacks a required field.
    #[error("{}: {reason}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// model.safetensors could not be parsed.
    #[error("{}: {reason}", path.display())]
    SafeTensors {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The model is not a BERT encoder this importer supports.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// Only f32, f16 and q8_0 outputs are supported.
    #[error("cannot import as {0:?}: choose f32, f16 or q8_0")]
    UnsupportedQuant(DType),
    /// A tensor the config implies is absent.
    #[error("tensor {0:?} is missing from model.safetensors")]
    MissingTensor(String),
    /// A tensor's shape disagrees with config.json.
    #[error("tensor {tensor:?} has shape {found:?}, config.json implies {expected:?}")]
    ShapeMismatch {
        /// The Hugging Face tensor name.
        tensor: String,
        /// The shape implied by config.json.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor element type other than f32, f16 or bf16.
    #[error("tensor {tensor:?} has unsupported element type {dtype}")]
    TensorType {
        /// The Hugging Face tensor name.
        tensor: String,
        /// Its safetensors dtype.
        dtype: String,
    },
    /// The vocabulary is inconsistent (holes, duplicates, size disagreeing with config).
    #[error("vocabulary: {0}")]
    Vocab(String),
    /// Writing the GGUF file failed.
    #[error("writing GGUF: {0}")]
    Write(#[from] GgufError),
}

/// Progress of an import, reported after each tensor.
#[derive(Debug, Clone)]
pub struct ImportProgress {
    /// Tensors converted so far.
    pub done: usize,
    /// Tensors in all.
    pub total: usize,
    /// The GGUF name of the tensor just converted.
    pub tensor: String,
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// Tensors written.
    pub tensors: usize,
    /// Parameters (elements) in all tensors.
    pub params: u64,
    /// Bytes of tensor data.
    pub bytes: u64,
    /// Format of the matrices.
    pub dtype: DType,
    /// Vocabulary size.
    pub vocab: usize,
    /// Encoder layers.
    pub layers: usize,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bert, {} layers, {} tensors, {:.1}M parameters, {:?} matrices, {:.1} MB of weights, vocab {}",
            self.layers,
            self.tensors,
            self.params as f64 / 1e6,
            self.dtype,
            self.bytes as f64 / 1e6,
            self.vocab
        )
    }
}

/// The config.json fields the importer uses.
#[derive(Debug)]
struct BertConfig {
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    max_pos: usize,
    type_vocab: usize,
    eps: f64,
}

fn read_json(path: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ImportError::Json {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn read_config(path: &Path) -> Result<BertConfig, ImportError> {
    let v = read_json(path)?;
    let missing = |k: &str| ImportError::Json {
        path: path.to_owned(),
        reason: format!("{k} is missing or not a count"),
    };
    let count = |k: &str| -> Result<usize, ImportError> {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| missing(k))
    };
    if let Some(t) = v.get("model_type").and_then(Value::as_str) {
        if t != "bert" {
            return Err(ImportError::Unsupported(format!(
                "model_type {t:?} (only \"bert\")"
            )));
        }
    }
    if let Some(act) = v.get("hidden_act").and_then(Value::as_str) {
        if act != "gelu" {
            return Err(ImportError::Unsupported(format!(
                "hidden_act {act:?} (only \"gelu\")"
            )));
        }
    }
    if let Some(p) = v.get("position_embedding_type").and_then(Value::as_str) {
        if p != "absolute" {
            return Err(ImportError::Unsupported(format!(
                "position_embedding_type {p:?}"
            )));
        }
    }
    let cfg = BertConfig {
        vocab: count("vocab_size")?,
        hidden: count("hidden_size")?,
        layers: count("num_hidden_layers")?,
        heads: count("num_attention_heads")?,
        ffn: count("intermediate_size")?,
        max_pos: count("max_position_embeddings")?,
        type_vocab: if v.get("type_vocab_size").is_some() {
            count("type_vocab_size")?
        } else {
            2
        },
        eps: v
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-12),
    };
    if !cfg.hidden.is_multiple_of(cfg.heads) {
        return Err(ImportError::Unsupported(format!(
            "hidden_size {} is not a multiple of {} heads",
            cfg.hidden, cfg.heads
        )));
    }
    Ok(cfg)
}

/// One tensor to convert: GGUF name, Hugging Face name(s), expected shape, whether it is a
/// matrix that takes the requested format.
struct Plan {
    gguf: String,
    hf: Vec<String>,
    shape: Vec<usize>,
    matrix: bool,
}

fn plan(cfg: &BertConfig) -> Vec<Plan> {
    let (h, f) = (cfg.hidden, cfg.ffn);
    let mut out = Vec::new();
    let mut add = |gguf: String, hf: &str, shape: Vec<usize>, matrix: bool| {
        // Older checkpoints name LayerNorm parameters gamma/beta; BertFor* models prefix "bert.".
        let mut names = vec![hf.to_owned()];
        if let Some(stem) = hf.strip_suffix("LayerNorm.weight") {
            names.push(format!("{stem}LayerNorm.gamma"));
        } else if let Some(stem) = hf.strip_suffix("LayerNorm.bias") {
            names.push(format!("{stem}LayerNorm.beta"));
        }
        let prefixed: Vec<String> = names.iter().map(|n| format!("bert.{n}")).collect();
        names.extend(prefixed);
        out.push(Plan {
            gguf,
            hf: names,
            shape,
            matrix,
        });
    };
    add(
        "token_embd.weight".into(),
        "embeddings.word_embeddings.weight",
        vec![cfg.vocab, h],
        true,
    );
    add(
        "token_types.weight".into(),
        "embeddings.token_type_embeddings.weight",
        vec![cfg.type_vocab, h],
        false,
    );
    add(
        "position_embd.weight".into(),
        "embeddings.position_embeddings.weight",
        vec![cfg.max_pos, h],
        false,
    );
    add(
        "token_embd_norm.weight".into(),
        "embeddings.LayerNorm.weight",
        vec![h],
        false,
    );
    add(
        "token_embd_norm.bias".into(),
        "embeddings.LayerNorm.bias",
        vec![h],
        false,
    );
    for i in 0..cfg.layers {
        let l = format!("encoder.layer.{i}");
        let parts: [(&str, String, usize, usize); 7] = [
            ("attn_q", format!("{l}.attention.self.query"), h, h),
            ("attn_k", format!("{l}.attention.self.key"), h, h),
            ("attn_v", format!("{l}.attention.self.value"), h, h),
            ("attn_output", format!("{l}.attention.output.dense"), h, h),
            (
                "attn_output_norm",
                format!("{l}.attention.output.LayerNorm"),
                h,
                0,
            ),
            ("ffn_up", format!("{l}.intermediate.dense"), f, h),
            ("ffn_down", format!("{l}.output.dense"), h, f),
        ];
        for (name, hf, rows, cols) in parts {
            let matrix = cols != 0;
            let wshape = if matrix { vec![rows, cols] } else { vec![rows] };
            add(
                format!("blk.{i}.{name}.weight"),
                &format!("{hf}.weight"),
                wshape,
                matrix,
            );
            add(
                format!("blk.{i}.{name}.bias"),
                &format!("{hf}.bias"),
                vec![rows],
                false,
            );
        }
        add(
            format!("blk.{i}.layer_output_norm.weight"),
            &format!("{l}.output.LayerNorm.weight"),
            vec![h],
            false,
        );
        add(
            format!("blk.{i}.layer_output_norm.bias"),
            &format!("{l}.output.LayerNorm.bias"),
            vec![h],
            false,
        );
    }
    out
}

/// Decodes a safetensors tensor to f32.
fn to_f32(name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, ImportError> {
    use safetensors::Dtype;
    let d = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(ImportError::TensorType {
                tensor: name.to_owned(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// The vocabulary in id order with llama.cpp token types, and special token ids by role.
struct Vocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    special: Vec<(&'static str, u32)>,
}

fn special_names(dir: &Path) -> Result<HashMap<&'static str, String>, ImportError> {
    let mut names: HashMap<&'static str, String> = [
        ("unk_token", "[UNK]"),
        ("sep_token", "[SEP]"),
        ("pad_token", "[PAD]"),
        ("cls_token", "[CLS]"),
        ("mask_token", "[MASK]"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let path = dir.join("special_tokens_map.json");
    if path.exists() {
        let v = read_json(&path)?;
        for (role, name) in names.iter_mut() {
            // Values are either the token or an AddedToken object with "content".
            match v.get(*role) {
                Some(Value::String(s)) => *name = s.clone(),
                Some(obj) => {
                    if let Some(s) = obj.get("content").and_then(Value::as_str) {
                        *name = s.to_owned();
                    }
                }
                None => {}
            }
        }
    }
    Ok(names)
}

fn read_vocab(dir: &Path, tokenizer: Option<&Value>, size: usize) -> Result<Vocab, ImportError> {
    let mut slots: Vec<Option<String>> = Vec::new();
    let mut types: HashMap<usize, i32> = HashMap::new();
    let put = |slots: &mut Vec<Option<String>>, id: usize, tok: &str| -> Result<(), ImportError> {
        if id >= size {
            return Err(ImportError::Vocab(format!(
                "token {tok:?} has id {id}, past vocab_size {size}"
            )));
        }
        if slots.len() <= id {
            slots.resize(id + 1, None);
        }
        match &slots[id] {
            Some(old) if old != tok => Err(ImportError::Vocab(format!(
                "id {id} is both {old:?} and {tok:?}"
            ))),
            _ => {
                slots[id] = Some(tok.to_owned());
                Ok(())
            }
        }
    };
    let specials = special_names(dir)?;
    if let Some(t) = tokenizer {
        let vocab = t
            .pointer("/model/vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| ImportError::Vocab("tokenizer.json has no model.vocab map".into()))?;
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| ImportError::Vocab(format!("id of {tok:?} is not a number")))?;
            put(&mut slots, usize::try_from(id).unwrap_or(usize::MAX), tok)?;
        }
        for added in t
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(tok)) = (
                added.get("id").and_then(Value::as_u64),
                added.get("content").and_then(Value::as_str),
            ) else {
                return Err(ImportError::Vocab(
                    "added token without id or content".into(),
                ));
            };
            let id = usize::try_from(id).unwrap_or(usize::MAX);
            put(&mut slots, id, tok)?;
            let special = added
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            types.insert(
                id,
                if special {
                    TOKEN_CONTROL
                } else {
                    TOKEN_USER_DEFINED
                },
            );
        }
    } else {
        let path = dir.join("vocab.txt");
        let text = std::fs::read_to_string(&path).map_err(|source| ImportError::Io {
            path: path.clone(),
            source,
        })?;
        for (id, line) in text.lines().enumerate() {
            put(&mut slots, id, line)?;
        }
    }
    // Holes become unused placeholders, as llama.cpp's converter does.
    slots.resize(size, None);
    let mut tokens = Vec::with_capacity(size);
    let mut tys = Vec::with_capacity(size);
    for (id, slot) in slots.into_iter().enumerate() {
        match slot {
            Some(tok) => {
                let ty =
                    types
                        .get(&id)
                        .copied()
                        .unwrap_or(if specials.values().any(|s| *s == tok) {
                            TOKEN_CONTROL
                        } else {
                            TOKEN_NORMAL
                        });
                tokens.push(tok);
                tys.push(ty);
            }
            None => {
                tokens.push(format!("[PAD{id}]"));
                tys.push(TOKEN_UNUSED);
            }
        }
    }
    let mut special = Vec::new();
    for (role, key) in [
        ("unk_token", "unknown_token_id"),
        ("sep_token", "seperator_token_id"),
        ("pad_token", "padding_token_id"),
        ("cls_token", "cls_token_id"),
        ("mask_token", "mask_token_id"),
    ] {
        if let Some(id) = tokens.iter().position(|t| *t == specials[role]) {
            special.push((key, id as u32));
        }
    }
    Ok(Vocab {
        tokens,
        types: tys,
        special,
    })
}

/// The `edgenlu.tokenizer.*` settings, from tokenizer.json (else tokenizer_config.json).
fn tokenizer_settings(
    dir: &Path,
    tokenizer: Option<&Value>,
) -> Result<Vec<(&'static str, MetaValue)>, ImportError> {
    let mut out = Vec::new();
    let flag = |out: &mut Vec<(&'static str, MetaValue)>, key, v: Option<&Value>| {
        if let Some(b) = v.and_then(Value::as_bool) {
            out.push((key, MetaValue::Bool(b)));
        }
    };
    if let Some(t) = tokenizer {
        match t.get("normalizer") {
            None | Some(Value::Null) => {}
            Some(n) if n.get("type").and_then(Value::as_str) == Some("BertNormalizer") => {
                flag(&mut out, "edgenlu.tokenizer.lowercase", n.get("lowercase"));
                // null means "follow lowercase"; the key is then left out.
                flag(
                    &mut out,
                    "edgenlu.tokenizer.strip_accents",
                    n.get("strip_accents"),
                );
                flag(
                    &mut out,
                    "edgenlu.tokenizer.handle_chinese_chars",
                    n.get("handle_chinese_chars"),
                );
                flag(
                    &mut out,
                    "edgenlu.tokenizer.clean_text",
                    n.get("clean_text"),
                );
            }
            Some(n) => {
                // Another normalizer would tokenize differently from what the keys can say.
                return Err(ImportError::Unsupported(format!(
                    "tokenizer.json normalizer {}",
                    n.get("type").unwrap_or(n)
                )));
            }
        }
        let model = t.get("model").unwrap_or(&Value::Null);
        match model.get("type").and_then(Value::as_str) {
            Some("WordPiece") | None => {}
            Some(other) => {
                return Err(ImportError::Unsupported(format!(
                    "tokenizer model {other:?} (only WordPiece)"
                )))
            }
        }
        if let Some(n) = model
            .get("max_input_chars_per_word")
            .and_then(Value::as_u64)
        {
            out.push((
                "edgenlu.tokenizer.max_input_chars_per_word",
                MetaValue::U32(n.min(u32::MAX.into()) as u32),
            ));
        }
        if let Some(p) = model
            .get("continuing_subword_prefix")
            .and_then(Value::as_str)
        {
            out.push((
                "edgenlu.tokenizer.continuing_subword_prefix",
                MetaValue::String(p.to_owned()),
            ));
        }
    } else {
        let path = dir.join("tokenizer_config.json");
        if path.exists() {
            let c = read_json(&path)?;
            flag(
                &mut out,
                "edgenlu.tokenizer.lowercase",
                c.get("do_lower_case"),
            );
            flag(
                &mut out,
                "edgenlu.tokenizer.strip_accents",
                c.get("strip_accents"),
            );
            flag(
                &mut out,
                "edgenlu.tokenizer.handle_chinese_chars",
                c.get("tokenize_chinese_chars"),
            );
        }
    }
    Ok(out)
}

/// llama.cpp's pooling type from sentence-transformers' 1_Pooling/config.json: mean = 1,
/// cls = 2; `None` when there is no pooling config.
fn pooling_type(dir: &Path) -> Result<Option<u32>, ImportError> {
    let path = dir.join("1_Pooling/config.json");
    if !path.exists() {
        return Ok(None);
    }
    let v = read_json(&path)?;
    let on = |k| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    if on("pooling_mode_mean_tokens") {
        Ok(Some(1))
    } else if on("pooling_mode_cls_token") {
        Ok(Some(2))
    } else {
        Err(ImportError::Unsupported(
            "pooling other than mean or cls".into(),
        ))
    }
}

/// Converts the BERT encoder in `hf_dir` to a GGUF file at `out`, written atomically.
/// Matrices (attention, feed-forward, token embeddings) take `quant` (f32, f16 or q8_0; a
/// q8_0 matrix whose rows are not whole blocks falls back to f16); norms, biases, position
/// and token-type embeddings stay f32. `progress` is called after each tensor.
pub fn import_bert(
    hf_dir: &Path,
    quant: DType,
    out: &Path,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    if !matches!(quant, DType::F32 | DType::F16 | DType::Q8_0) {
        return Err(ImportError::UnsupportedQuant(quant));
    }
    let cfg = read_config(&hf_dir.join("config.json"))?;
    let tok_path = hf_dir.join("tokenizer.json");
    let tokenizer = if tok_path.exists() {
        Some(read_json(&tok_path)?)
    } else {
        None
    };
    let vocab = read_vocab(hf_dir, tokenizer.as_ref(), cfg.vocab)?;
    let settings = tokenizer_settings(hf_dir, tokenizer.as_ref())?;
    let pooling = pooling_type(hf_dir)?;

    let st_path = hf_dir.join("model.safetensors");
    let st_file = File::open(&st_path).map_err(|source| ImportError::Io {
        path: st_path.clone(),
        source,
    })?;
    // SAFETY: read-only map of an input file for the duration of the import.
    let st_map = unsafe { memmap2::Mmap::map(&st_file) }.map_err(|source| ImportError::Io {
        path: st_path.clone(),
        source,
    })?;
    let st = SafeTensors::deserialize(&st_map).map_err(|e| ImportError::SafeTensors {
        path: st_path.clone(),
        reason: e.to_string(),
    })?;

    let name = hf_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bert".into());
    let mut w = GgufWriter::new();
    let u32v = |n: usize| MetaValue::U32(u32::try_from(n).unwrap_or(u32::MAX));
    w.add_metadata("general.architecture", MetaValue::String("bert".into()))
        .add_metadata("general.name", MetaValue::String(name))
        .add_metadata(
            "general.file_type",
            // llama.cpp's LLAMA_FTYPE_ALL_F32 / MOSTLY_F16 / MOSTLY_Q8_0.
            MetaValue::U32(match quant {
                DType::F16 => 1,
                DType::Q8_0 => 7,
                _ => 0,
            }),
        )
        .add_metadata("general.quantization_version", MetaValue::U32(2))
        .add_metadata("bert.context_length", u32v(cfg.max_pos))
        .add_metadata("bert.embedding_length", u32v(cfg.hidden))
        .add_metadata("bert.feed_forward_length", u32v(cfg.ffn))
        .add_metadata("bert.block_count", u32v(cfg.layers))
        .add_metadata("bert.attention.head_count", u32v(cfg.heads))
        .add_metadata(
            "bert.attention.layer_norm_epsilon",
            MetaValue::F32(cfg.eps as f32),
        )
        .add_metadata("bert.attention.causal", MetaValue::Bool(false));
    if let Some(p) = pooling {
        w.add_metadata("bert.pooling_type", MetaValue::U32(p));
    }
    w.add_metadata("tokenizer.ggml.model", MetaValue::String("bert".into()))
        .add_metadata(
            "tokenizer.ggml.tokens",
            MetaValue::Array(
                vocab
                    .tokens
                    .iter()
                    .map(|t| MetaValue::String(t.clone()))
                    .collect(),
            ),
        )
        .add_metadata(
            "tokenizer.ggml.token_type",
            MetaValue::Array(vocab.types.iter().map(|&t| MetaValue::I32(t)).collect()),
        )
        .add_metadata("tokenizer.ggml.token_type_count", u32v(cfg.type_vocab));
    for (key, id) in &vocab.special {
        w.add_metadata(format!("tokenizer.ggml.{key}"), MetaValue::U32(*id));
    }
    for (key, value) in settings {
        w.add_metadata(key, value);
    }

    let plan = plan(&cfg);
    let total = plan.len();
    let (mut params, mut bytes) = (0u64, 0u64);
    for (done, p) in plan.iter().enumerate() {
        let (hf_name, view) =
            p.hf.iter()
                .find_map(|n| st.tensor(n).ok().map(|v| (n, v)))
                .ok_or_else(|| ImportError::MissingTensor(p.hf[0].clone()))?;
        if view.shape() != p.shape.as_slice() {
            return Err(ImportError::ShapeMismatch {
                tensor: hf_name.clone(),
                expected: p.shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        let x = to_f32(hf_name, &view)?;
        let cols = *p.shape.last().unwrap_or(&1);
        let dtype = match quant {
            _ if !p.matrix => DType::F32,
            DType::Q8_0 if DType::Q8_0.row_bytes(cols).is_none() => DType::F16,
            q => q,
        };
        let mut data = Vec::with_capacity(dtype.row_bytes(x.len()).unwrap_or(0));
        // Cannot fail: the format is f32/f16/q8_0 and rows are whole blocks (checked above).
        quantize(dtype, &x, &mut data)
            .map_err(|e| ImportError::Unsupported(format!("{}: {e}", p.gguf)))?;
        params += x.len() as u64;
        bytes += data.len() as u64;
        w.add_tensor(p.gguf.clone(), dtype, &p.shape, data)?;
        progress(ImportProgress {
            done: done + 1,
            total,
            tensor: p.gguf.clone(),
        });
    }
    w.write(out)?;
    Ok(ImportSummary {
        tensors: total,
        params,
        bytes,
        dtype: quant,
        vocab: cfg.vocab,
        layers: cfg.layers,
    })
}
