//! Choosing the next token from logits: greedy, or temperature with top-k and top-p (nucleus)
//! from a seeded generator, so a seed reproduces a generation exactly; either after an optional
//! repetition penalty on the tokens seen last (llama.cpp's `repeat_penalty`).

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use std::collections::VecDeque;

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
    /// Logits of the tokens among the last `repeat_last_n` (prompt included) are divided by
    /// this when positive and multiplied when negative, once per distinct token, before
    /// anything else, as llama.cpp's `repeat_penalty`; 1 is off.
    pub repeat_penalty: f32,
    /// How many of the latest tokens the repetition penalty looks at; 0 is off.
    pub repeat_last_n: usize,
}

/// The repetition penalty llama.cpp users know as the classic default (`--repeat-penalty`).
pub const DEFAULT_REPEAT_PENALTY: f32 = 1.1;
/// The window llama.cpp's repetition penalty looks at by default (`--repeat-last-n`).
pub const DEFAULT_REPEAT_LAST_N: usize = 64;

impl Sampling {
    /// Greedy decoding.
    pub const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
        repeat_penalty: 1.0,
        repeat_last_n: 0,
    };

    /// Whether the repetition penalty changes anything.
    fn penalizes(&self) -> bool {
        self.repeat_penalty != 1.0 && self.repeat_last_n > 0
    }

    /// An error message if a field is out of range (NaN, negative, `top_p` outside (0, 1],
    /// a repetition penalty not finite and positive).
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
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(format!(
                "repeat_penalty {} must be finite and > 0",
                self.repeat_penalty
            ));
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
    /// The latest tokens, at most `repeat_last_n` (only kept when the penalty is on).
    recent: VecDeque<u32>,
    /// Scratch: the distinct tokens of `recent`.
    distinct: Vec<u32>,
}

impl Sampler {
    /// A sampler seeded from `sampling.seed`; see [`Sampling::check`] for valid fields.
    pub fn new(sampling: Sampling) -> Result<Sampler, String> {
        sampling.check()?;
        Ok(Sampler {
            sampling,
            rng: XorShiftRng::seed_from_u64(sampling.seed),
            candidates: Vec::new(),
            recent: VecDeque::new(),
            distinct: Vec::new(),
        })
    }

    /// Records tokens the model has seen (the prompt; sampled tokens are recorded by
    /// [`Sampler::sample`]) for the repetition penalty.
    pub fn remember(&mut self, tokens: &[u32]) {
        if !self.sampling.penalizes() {
            return;
        }
        let n = self.sampling.repeat_last_n;
        let tail = &tokens[tokens.len().saturating_sub(n)..];
        self.recent.extend(tail);
        let excess = self.recent.len().saturating_sub(n);
        self.recent.drain(..excess);
    }

    /// Applies the repetition penalty to `logits`, once per distinct recent token (ids past
    /// the end of `logits` ignored).
    fn penalize(&mut self, logits: &mut [f32]) {
        let penalty = self.sampling.repeat_penalty;
        self.distinct.clear();
        self.distinct.extend(&self.recent);
        self.distinct.sort_unstable();
        self.distinct.dedup();
        for &t in &self.distinct {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
            }
        }
    }

    /// The next token for `logits` (changed in place by the repetition penalty, if on), which
    /// it then remembers; `None` only for empty logits or when every logit is NaN. A token
    /// whose logit is −∞ (masked out by a constraint) is never chosen while any other is
    /// finite.
    pub fn sample(&mut self, logits: &mut [f32]) -> Option<u32> {
        if self.sampling.penalizes() {
            self.penalize(logits);
        }
        let token = self.choose(logits);
        if let Some(t) = token {
            self.remember(&[t]);
        }
        token
    }

    /// Greedy or sampled, as [`Sampling`] says.
    fn choose(&mut self, logits: &[f32]) -> Option<u32> {
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
                // −∞ is a token a constraint ruled out: never a candidate.
                .filter(|(_, l)| !l.is_nan() && **l != f32::NEG_INFINITY)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn penalized(penalty: f32, last_n: usize) -> Sampler {
        Sampler::new(Sampling {
            repeat_penalty: penalty,
            repeat_last_n: last_n,
            ..Sampling::GREEDY
        })
        .unwrap()
    }

    #[test]
    fn repetition_penalty_moves_greedy_off_a_recent_token() {
        // Token 0 leads by less than the penalty takes away from it.
        let logits = [2.0f32, 1.9, -1.0];
        let mut plain = penalized(1.0, 64);
        plain.remember(&[0]);
        assert_eq!(plain.sample(&mut logits.clone()), Some(0));
        let mut s = penalized(1.1, 64);
        s.remember(&[0, 0, 0]);
        let mut l = logits;
        assert_eq!(s.sample(&mut l), Some(1));
        // Once per distinct token; a negative logit is pushed further down.
        assert_eq!(l[0], 2.0 / 1.1);
        s.remember(&[2]);
        let mut l = logits;
        s.sample(&mut l);
        assert_eq!(l[2], -1.1);
    }

    #[test]
    fn repetition_penalty_forgets_tokens_past_its_window() {
        let mut s = penalized(2.0, 2);
        s.remember(&[0, 5, 6]);
        assert_eq!(s.sample(&mut [2.0, 1.9]), Some(0));
        // 0 was just sampled: now it is recent.
        assert_eq!(s.sample(&mut [2.0, 1.9]), Some(1));
    }

    #[test]
    fn masked_tokens_are_never_sampled() {
        let mut logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, -30.0];
        for seed in 0..200 {
            let mut s = Sampler::new(Sampling {
                temperature: 5.0,
                seed,
                ..Sampling::GREEDY
            })
            .unwrap();
            assert!(matches!(s.sample(&mut logits), Some(1 | 3)));
        }
        assert_eq!(penalized(1.0, 0).sample(&mut logits), Some(1));
    }

    #[test]
    fn a_bad_repetition_penalty_is_refused() {
        for p in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(Sampler::new(Sampling {
                repeat_penalty: p,
                ..Sampling::GREEDY
            })
            .is_err());
        }
    }
}
