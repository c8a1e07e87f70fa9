//! Choosing the next token from logits: greedy, or temperature with top-k and top-p (nucleus)
//! from a seeded generator, so a seed reproduces a generation exactly.

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;

/// How to choose tokens. `temperature <= 0` is greedy (the first largest logit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Logits are divided by this before the softmax; 0 means greedy.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`;
    /// 1 keeps all.
    pub top_p: f32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding.
    pub const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    };

    /// An error message if a field is out of range (NaN, negative, `top_p` outside (0, 1]).
    pub fn check(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        Ok(())
    }
}

/// Draws tokens according to a [`Sampling`].
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    rng: XorShiftRng,
    /// Scratch: (probability, token) pairs.
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler seeded from `sampling.seed`; see [`Sampling::check`] for valid fields.
    pub fn new(sampling: Sampling) -> Result<Sampler, String> {
        sampling.check()?;
        Ok(Sampler {
            sampling,
            rng: XorShiftRng::seed_from_u64(sampling.seed),
            candidates: Vec::new(),
        })
    }

    /// The next token for `logits`; `None` only for empty logits or when every logit is NaN.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        let s = self.sampling;
        if s.temperature <= 0.0 {
            return edgenlu_kernels::ops::argmax(logits)
                .ok()
                .filter(|&i| !logits[i].is_nan())
                .map(|i| i as u32);
        }
        let c = &mut self.candidates;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (l, i as u32)),
        );
        if c.is_empty() {
            return None;
        }
        // Most likely first; ties by token id so the order never depends on the sort.
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if s.top_k > 0 && s.top_k < c.len() {
            c.select_nth_unstable_by(s.top_k - 1, by_logit);
            c.truncate(s.top_k);
        }
        c.sort_unstable_by(by_logit);
        let max = c[0].0;
        let mut sum = 0f64;
        for (p, _) in c.iter_mut() {
            *p = ((*p - max) / s.temperature).exp();
            sum += *p as f64;
        }
        let mut kept = 0f64;
        let mut keep = c.len();
        for (i, (p, _)) in c.iter().enumerate() {
            kept += *p as f64;
            if kept >= s.top_p as f64 * sum {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
        // A uniform draw in [0, kept): 53 random bits, as f64.
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * kept;
        let mut acc = 0f64;
        for &(p, t) in c.iter() {
            acc += p as f64;
            if u < acc {
                return Some(t);
            }
        }
        c.last().map(|&(_, t)| t)
    }
}
