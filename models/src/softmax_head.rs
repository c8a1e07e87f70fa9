//! A linear softmax classifier over frozen encoder states (the seed's "encoder + lightweight
//! head"), trained here in Rust: the intent head over sentence embeddings — calibrated by
//! temperature scaling and given an out-of-scope threshold on the calibrated top probability,
//! both tuned on validation data — and the slot tagger over token states (BIO tags).
//!
//! The head is `logits = W·x + b` with `W [classes × dim]`; the skill runs it on device with
//! one host `matmul` and a softmax, so what is trained here is exactly what answers.

use edgenlu_kernels::ops::dot;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;

/// How the head is trained: minibatch Adam on the softmax cross-entropy, plus L2 on `W`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadTraining {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the biases), per example.
    pub l2: f32,
    /// Seed of the example order.
    pub seed: u64,
}

impl Default for HeadTraining {
    fn default() -> Self {
        HeadTraining {
            epochs: 40,
            batch: 32,
            learning_rate: 0.01,
            l2: 1e-5,
            seed: 0,
        }
    }
}

/// Why a head could not be trained or tuned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HeadError {
    #[error("no training examples")]
    Empty,
    #[error("example {index} has {got} values, the others {dim}")]
    Dimension {
        index: usize,
        got: usize,
        dim: usize,
    },
    #[error("example {index} has label {label}, but there are only {intents} intents")]
    Label {
        index: usize,
        label: usize,
        intents: usize,
    },
    #[error("example {0} has a value that is not finite")]
    NotFinite(usize),
}

/// A trained head: weights, biases, and its calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxHead {
    /// Embedding size.
    pub dim: usize,
    /// `[intents × dim]`, row-major.
    pub weight: Vec<f32>,
    /// `[intents]`.
    pub bias: Vec<f32>,
    /// Logits are divided by this before the softmax (temperature scaling; 1 = untuned).
    pub temperature: f32,
    /// A calibrated top probability below this means out of scope (0 = never).
    pub oos_threshold: f32,
}

/// Embeddings with their labels: `labels[i]` is `None` for an out-of-scope example.
pub struct Labelled<'a> {
    pub embeddings: &'a [Vec<f32>],
    pub labels: &'a [Option<usize>],
}

impl SoftmaxHead {
    /// Number of classes (intents, or tags).
    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// Trains a head for `intents` classes on the in-scope examples of `data`.
    pub fn train(
        data: &Labelled,
        intents: usize,
        opts: &HeadTraining,
    ) -> Result<SoftmaxHead, HeadError> {
        let dim = check(data, intents)?;
        let examples: Vec<(usize, usize)> = data
            .labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.map(|l| (i, l)))
            .collect();
        if examples.is_empty() {
            return Err(HeadError::Empty);
        }
        let mut head = SoftmaxHead {
            dim,
            weight: vec![0.0; intents * dim],
            bias: vec![0.0; intents],
            temperature: 1.0,
            oos_threshold: 0.0,
        };
        let params = head.weight.len() + intents;
        let (mut m, mut v) = (vec![0f32; params], vec![0f32; params]);
        let mut grad = vec![0f32; params];
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = XorShiftRng::seed_from_u64(opts.seed);
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut step = 0i32;
        let mut probs = vec![0f32; intents];
        for _ in 0..opts.epochs {
            // Fisher–Yates with the seeded generator: the same seed, the same head.
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for batch in order.chunks(opts.batch.max(1)) {
                grad.fill(0.0);
                let (gw, gb) = grad.split_at_mut(head.weight.len());
                for &k in batch {
                    let (i, label) = examples[k];
                    let x = &data.embeddings[i];
                    head.raw_logits(x, &mut probs);
                    softmax_in_place(&mut probs);
                    probs[label] -= 1.0;
                    for (c, &g) in probs.iter().enumerate() {
                        gb[c] += g;
                        for (w, &xi) in gw[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                            *w += g * xi;
                        }
                    }
                }
                let scale = 1.0 / batch.len() as f32;
                step += 1;
                let (c1, c2) = (1.0 - beta1.powi(step), 1.0 - beta2.powi(step));
                let nw = head.weight.len();
                for p in 0..params {
                    let value = if p < nw {
                        &mut head.weight[p]
                    } else {
                        &mut head.bias[p - nw]
                    };
                    let mut g = grad[p] * scale;
                    if p < nw {
                        g += opts.l2 * *value;
                    }
                    m[p] = beta1 * m[p] + (1.0 - beta1) * g;
                    v[p] = beta2 * v[p] + (1.0 - beta2) * g * g;
                    *value -= opts.learning_rate * (m[p] / c1) / ((v[p] / c2).sqrt() + eps);
                }
            }
        }
        Ok(head)
    }

    /// `W·x + b` into `out [intents]`, before temperature.
    fn raw_logits(&self, x: &[f32], out: &mut [f32]) {
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.bias[c] + dot(&self.weight[c * self.dim..(c + 1) * self.dim], x);
        }
    }

    /// Calibrated probabilities of each intent for embedding `x`.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut p = vec![0f32; self.classes()];
        self.raw_logits(x, &mut p);
        p.iter_mut().for_each(|l| *l /= self.temperature);
        softmax_in_place(&mut p);
        p
    }

    /// The most likely intent and its calibrated probability; `None` for the intent when that
    /// probability is below the out-of-scope threshold.
    pub fn predict(&self, x: &[f32]) -> (Option<usize>, f32) {
        let p = self.probabilities(x);
        let (best, prob) =
            p.iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        ((prob >= self.oos_threshold).then_some(best), prob)
    }

    /// Temperature scaling (Guo et al., 2017): the temperature minimizing the negative
    /// log-likelihood of the in-scope examples of `val`, searched on a log grid.
    pub fn calibrate(&mut self, val: &Labelled) -> Result<(), HeadError> {
        check(val, self.classes())?;
        let logits: Vec<(Vec<f32>, usize)> = val
            .embeddings
            .iter()
            .zip(val.labels)
            .filter_map(|(x, l)| {
                l.map(|l| {
                    let mut z = vec![0f32; self.classes()];
                    self.raw_logits(x, &mut z);
                    (z, l)
                })
            })
            .collect();
        if logits.is_empty() {
            return Err(HeadError::Empty);
        }
        let nll = |t: f32| -> f64 {
            logits
                .iter()
                .map(|(z, l)| {
                    let max = z.iter().fold(f32::MIN, |a, &b| a.max(b));
                    let sum: f64 = z.iter().map(|&v| (((v - max) / t) as f64).exp()).sum();
                    sum.ln() - ((z[*l] - max) / t) as f64
                })
                .sum()
        };
        // 0.05 … 20 in steps of 2 %.
        self.temperature = (0..=300)
            .map(|i| 0.05f32 * 1.02f32.powi(i))
            .map(|t| (t, nll(t)))
            .fold((1.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
            .0;
        Ok(())
    }

    /// The out-of-scope threshold that maximizes accuracy on `val`, where an out-of-scope
    /// example is right when rejected and an in-scope one when accepted with the right intent
    /// (the CLINC150 protocol's overall accuracy). Candidates are the midpoints between the
    /// sorted top probabilities of `val`.
    pub fn tune_oos_threshold(&mut self, val: &Labelled) -> Result<(), HeadError> {
        check(val, self.classes())?;
        // (top probability, right if accepted, right if rejected)
        let mut scored: Vec<(f32, bool, bool)> = val
            .embeddings
            .iter()
            .zip(val.labels)
            .map(|(x, l)| {
                let p = self.probabilities(x);
                let best = argmax(&p);
                (p[best], *l == Some(best), l.is_none())
            })
            .collect();
        if scored.is_empty() {
            return Err(HeadError::Empty);
        }
        self.oos_threshold = accuracy_maximizing_threshold(&mut scored);
        Ok(())
    }
}

/// The threshold on a score in [0, 1] that maximizes accuracy over `scored` — (score, right if
/// accepted, right if rejected) per example, an example accepted when its score is at least the
/// threshold —: 0 (all accepted) unless a midpoint between two sorted scores (or between the
/// highest and 1) is right more often. Sorts `scored`.
pub fn accuracy_maximizing_threshold(scored: &mut [(f32, bool, bool)]) -> f32 {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold below everything: all accepted.
    let mut right: usize = scored.iter().filter(|s| s.1).count();
    let (mut best_right, mut best_threshold) = (right, 0.0f32);
    for i in 0..scored.len() {
        // Raising the threshold past scored[i] rejects it.
        right = right - scored[i].1 as usize + scored[i].2 as usize;
        let next = scored.get(i + 1).map_or(1.0, |s| s.0);
        if right > best_right && next > scored[i].0 {
            best_right = right;
            best_threshold = (scored[i].0 + next) / 2.0;
        }
    }
    best_threshold
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, &x)| if x > a.1 { (i, x) } else { a })
        .0
}

fn softmax_in_place(v: &mut [f32]) {
    let max = v.iter().fold(f32::MIN, |a, &b| a.max(b));
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

/// Checks shapes, labels and values; returns the embedding size.
fn check(data: &Labelled, intents: usize) -> Result<usize, HeadError> {
    let dim = data.embeddings.first().ok_or(HeadError::Empty)?.len();
    if dim == 0 || data.labels.len() != data.embeddings.len() {
        return Err(HeadError::Empty);
    }
    for (index, (x, l)) in data.embeddings.iter().zip(data.labels).enumerate() {
        if x.len() != dim {
            return Err(HeadError::Dimension {
                index,
                got: x.len(),
                dim,
            });
        }
        if let Some(label) = *l {
            if label >= intents {
                return Err(HeadError::Label {
                    index,
                    label,
                    intents,
                });
            }
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(HeadError::NotFinite(index));
        }
    }
    Ok(dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated clusters on the unit sphere in 8 dimensions, plus noise.
    fn clusters(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Option<usize>>) {
        let mut rng = XorShiftRng::seed_from_u64(seed);
        let mut unit = || (rng.next_u32() as f32 / u32::MAX as f32) - 0.5;
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = i % 3;
            let mut x: Vec<f32> = (0..8).map(|_| 0.15 * unit()).collect();
            x[c] += 1.0;
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            xs.push(x.iter().map(|v| v / norm).collect());
            ys.push(Some(c));
        }
        (xs, ys)
    }

    #[test]
    fn learns_separable_intents_and_is_deterministic() {
        let (xs, ys) = clusters(300, 1);
        let data = Labelled {
            embeddings: &xs,
            labels: &ys,
        };
        let head = SoftmaxHead::train(&data, 3, &HeadTraining::default()).unwrap();
        let (tx, ty) = clusters(90, 2);
        let right = tx
            .iter()
            .zip(&ty)
            .filter(|(x, y)| head.predict(x).0 == **y)
            .count();
        assert_eq!(right, 90);
        assert_eq!(
            head,
            SoftmaxHead::train(&data, 3, &HeadTraining::default()).unwrap()
        );
    }

    #[test]
    fn out_of_scope_threshold_rejects_what_lies_between_intents() {
        let (xs, ys) = clusters(300, 3);
        let data = Labelled {
            embeddings: &xs,
            labels: &ys,
        };
        let mut head = SoftmaxHead::train(&data, 3, &HeadTraining::default()).unwrap();
        // Out of scope: points halfway between two intents, partly along dimensions none uses.
        let (mut vx, mut vy) = clusters(60, 4);
        for i in 0..30 {
            let mut x = [0f32; 8];
            x[i % 3] = 1.0;
            x[(i + 1) % 3] = 1.0;
            x[3 + i % 5] = 0.5;
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            vx.push(x.iter().map(|v| v / norm).collect());
            vy.push(None);
        }
        let val = Labelled {
            embeddings: &vx,
            labels: &vy,
        };
        head.calibrate(&val).unwrap();
        assert!(head.temperature > 0.0);
        head.tune_oos_threshold(&val).unwrap();
        assert!(head.oos_threshold > 0.0 && head.oos_threshold < 1.0);
        let rejected = vx[60..]
            .iter()
            .filter(|x| head.predict(x).0.is_none())
            .count();
        let accepted = vx[..60]
            .iter()
            .zip(&vy)
            .filter(|(x, y)| head.predict(x).0 == **y)
            .count();
        assert!(rejected >= 27, "{rejected} of 30 out-of-scope rejected");
        assert!(accepted >= 57, "{accepted} of 60 in-scope accepted");
    }

    #[test]
    fn calibration_lowers_overconfidence() {
        let (xs, ys) = clusters(300, 5);
        let data = Labelled {
            embeddings: &xs,
            labels: &ys,
        };
        let mut head = SoftmaxHead::train(&data, 3, &HeadTraining::default()).unwrap();
        // Validation with a third of the labels wrong: the calibrated head must be less sure.
        let (vx, mut vy) = clusters(90, 6);
        for (i, y) in vy.iter_mut().enumerate() {
            if i % 3 == 0 {
                *y = Some((y.unwrap() + 1) % 3);
            }
        }
        let before = head.predict(&vx[1]).1;
        head.calibrate(&Labelled {
            embeddings: &vx,
            labels: &vy,
        })
        .unwrap();
        assert!(head.temperature > 1.0);
        assert!(head.predict(&vx[1]).1 < before);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let xs = vec![vec![1.0, 0.0], vec![0.0]];
        let ys = vec![Some(0), Some(1)];
        let data = Labelled {
            embeddings: &xs,
            labels: &ys,
        };
        assert!(matches!(
            SoftmaxHead::train(&data, 2, &HeadTraining::default()),
            Err(HeadError::Dimension { index: 1, .. })
        ));
        let xs = vec![vec![1.0, f32::NAN]];
        let ys = vec![Some(0)];
        let data = Labelled {
            embeddings: &xs,
            labels: &ys,
        };
        assert_eq!(
            SoftmaxHead::train(&data, 1, &HeadTraining::default()),
            Err(HeadError::NotFinite(0))
        );
        let ys = vec![Some(3)];
        let xs = vec![vec![1.0]];
        let data = Labelled {
            embeddings: &xs,
            labels: &ys,
        };
        assert!(matches!(
            SoftmaxHead::train(&data, 2, &HeadTraining::default()),
            Err(HeadError::Label { label: 3, .. })
        ));
    }
}
