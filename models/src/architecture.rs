//! The decoder families the fused pass runs, and what sets each apart: read from a GGUF's
//! `general.architecture`, its `<architecture>.*` metadata and which tensors it has, as
//! llama.cpp reads them, so one pass ([`crate::Llama`]) serves every family.

use edgenlu_kernels::ops::RopeLayout;

use crate::gguf::GgufFile;
use crate::weights::{meta_usize, ModelError};

/// A decoder family (`general.architecture`) the fused pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama and its kin (SmolLM2): the pass's base form.
    Llama,
    /// Qwen2 and Qwen2.5: biases on the q/k/v projections, NeoX rope.
    Qwen2,
    /// Qwen3 (dense): per-head RMS norms of q and k before rope, NeoX rope, no biases.
    Qwen3,
    /// Gemma 3 (text): embeddings scaled by √dim, per-head q/k norms, norms after attention and
    /// after the FFN, a GELU(tanh)-gated FFN, and sliding-window layers with their own rope
    /// base between global ones.
    Gemma3,
}

/// The architectures the fused pass runs, as a refusal names them.
pub const SUPPORTED: &str = "llama, qwen2, qwen3, gemma3";

/// Whether a family's q/k/v projections carry biases (`blk.N.attn_q.bias`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QkvBias {
    /// Never: a bias tensor in the file is not part of the family's graph.
    None,
    /// Used when the file has them (llama.cpp loads llama's as optional).
    Optional,
    /// Every block must have them.
    Required,
}

/// The FFN's gate activation: `down(act(gate(x)) · up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatedActivation {
    /// SiLU (SwiGLU): llama, qwen2, qwen3.
    Silu,
    /// GELU in its tanh form (GeGLU): gemma3.
    GeluTanh,
}

impl Architecture {
    /// The family of `file`, from `general.architecture`: another one is
    /// [`ModelError::UnsupportedArchitecture`], none at all a metadata error.
    pub fn of(file: &GgufFile) -> Result<Architecture, ModelError> {
        let name = file
            .architecture()
            .ok_or_else(|| ModelError::Metadata("general.architecture is missing".into()))?;
        Architecture::from_name(name)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(name.to_string(), SUPPORTED))
    }

    /// The family called `name` in `general.architecture`, if the pass runs it.
    pub fn from_name(name: &str) -> Option<Architecture> {
        [
            Architecture::Llama,
            Architecture::Qwen2,
            Architecture::Qwen3,
            Architecture::Gemma3,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// The name in `general.architecture`, also the prefix of its metadata keys.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Gemma3 => "gemma3",
        }
    }

    /// The metadata key `<architecture>.<key>`.
    pub(crate) fn key(self, key: &str) -> String {
        format!("{}.{key}", self.name())
    }

    /// How rope pairs a head's elements: llama GGUFs have q/k rows permuted for the
    /// interleaved form; the others keep Hugging Face's halves (ggml's NeoX mode).
    pub fn rope_layout(self) -> RopeLayout {
        match self {
            Architecture::Llama => RopeLayout::Interleaved,
            _ => RopeLayout::Halves,
        }
    }

    /// Whether q and k are RMS-normed per head (`attn_q_norm`, `attn_k_norm`) before rope.
    pub fn has_qk_norm(self) -> bool {
        matches!(self, Architecture::Qwen3 | Architecture::Gemma3)
    }

    /// Whether the attention's and the FFN's outputs are RMS-normed (`post_attention_norm`,
    /// `post_ffw_norm`) before their residual add.
    pub fn has_post_norms(self) -> bool {
        self == Architecture::Gemma3
    }

    /// Whether the token embeddings are scaled by √dim before the first block.
    pub fn scales_embeddings(self) -> bool {
        self == Architecture::Gemma3
    }

    /// The FFN's gate activation.
    pub fn activation(self) -> GatedActivation {
        match self {
            Architecture::Gemma3 => GatedActivation::GeluTanh,
            _ => GatedActivation::Silu,
        }
    }

    /// What the attention scores `q·k` are scaled by, as llama.cpp sets it: 1/√head_dim,
    /// except for Gemma 3 27B, which llama.cpp knows by its 62 layers and scales by its
    /// query_pre_attn_scalar, dim / heads.
    pub(crate) fn attention_scale(
        self,
        layers: usize,
        dim: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<f32, ModelError> {
        let scale_dim = match (self, layers) {
            (Architecture::Gemma3, 62) => dim / heads,
            _ => head_dim,
        };
        if scale_dim == 0 {
            return Err(ModelError::Metadata(format!(
                "{dim} dims over {heads} heads leave no attention scale"
            )));
        }
        Ok(1.0 / (scale_dim as f32).sqrt())
    }

    /// Whether the q/k/v projections have biases.
    pub(crate) fn qkv_bias(self) -> QkvBias {
        match self {
            Architecture::Llama => QkvBias::Optional,
            Architecture::Qwen2 => QkvBias::Required,
            Architecture::Qwen3 | Architecture::Gemma3 => QkvBias::None,
        }
    }
}

/// Sliding-window attention as Gemma 3 interleaves it: of every `period` layers, all but the
/// last attend only to the `window` latest positions and turn with their own rope base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    /// Positions a sliding layer sees, its own included (`<arch>.attention.sliding_window`).
    pub window: usize,
    /// Layers per group of sliding layers and the one global layer that ends it.
    pub period: usize,
    /// Rope frequency base of the sliding layers.
    pub rope_base: f32,
}

impl SlidingWindow {
    /// Gemma 3's pattern as llama.cpp sets it: five sliding layers then a global one, the
    /// sliding ones at rope base 10 000.
    const GEMMA3_PERIOD: usize = 6;
    /// See [`Self::GEMMA3_PERIOD`].
    const GEMMA3_ROPE_BASE: f32 = 10_000.0;

    /// The sliding window of `arch` in `file`, if the family has one: Gemma 3's needs
    /// `<arch>.attention.sliding_window` (llama.cpp runs a file without it as another variant,
    /// with final logit softcapping, which the pass does not implement).
    pub(crate) fn read(
        file: &GgufFile,
        arch: Architecture,
    ) -> Result<Option<SlidingWindow>, ModelError> {
        if arch != Architecture::Gemma3 {
            return Ok(None);
        }
        let key = arch.key("attention.sliding_window");
        let window = meta_usize(file, &key).map_err(|_| ModelError::Unsupported {
            architecture: arch.name(),
            what: format!("gemma3 without {key} (no sliding window)"),
        })?;
        Ok(Some(SlidingWindow {
            window,
            period: SlidingWindow::GEMMA3_PERIOD,
            rope_base: SlidingWindow::GEMMA3_ROPE_BASE,
        }))
    }

    /// Whether `layer` attends through the window (else it sees every position).
    pub fn slides(&self, layer: usize) -> bool {
        layer % self.period < self.period - 1
    }
}

/// The `<architecture>.<key>` metadata a family has but the pass does not implement, each
/// refused at load naming it when present with a value other than the neutral one.
pub(crate) fn refuse_unsupported(file: &GgufFile, arch: Architecture) -> Result<(), ModelError> {
    let unsupported = |what: String| ModelError::Unsupported {
        architecture: arch.name(),
        what,
    };
    if let Some(kind) = file.get_str(&arch.key("rope.scaling.type")) {
        // Linear scaling by a factor of 1 (checked below) changes nothing.
        if kind != "none" && kind != "linear" {
            return Err(unsupported(format!("rope scaling of type {kind:?}")));
        }
    }
    if let Some(factor) = file.get_f32(&arch.key("rope.scaling.factor")) {
        if factor != 1.0 && factor != 0.0 {
            return Err(unsupported(format!("rope scaling by {factor}")));
        }
    }
    for softcap in ["attn_logit_softcapping", "final_logit_softcapping"] {
        if let Some(cap) = file.get_f32(&arch.key(softcap)) {
            if cap != 0.0 {
                return Err(unsupported(format!("{softcap} ({cap})")));
            }
        }
    }
    Ok(())
}
