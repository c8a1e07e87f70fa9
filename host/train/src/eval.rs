//! What `edgenlu eval` computes from gold labels and a skill's answers: intent accuracy and
//! macro-F1, CLINC150's out-of-scope scores, and slot span F1 as CoNLL scores it.

pub use crate::datastore::OUT_OF_SCOPE;
use crate::slots::ByteSpan;

/// Intent accuracy and macro-F1 over (gold, answered) pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentScores {
    pub examples: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Mean over every intent seen (gold or answered) of its F1.
    pub macro_f1: f64,
}

impl IntentScores {
    pub fn of(pairs: &[(&str, &str)]) -> IntentScores {
        let correct = pairs.iter().filter(|(g, p)| g == p).count();
        let labels: std::collections::BTreeSet<&str> =
            pairs.iter().flat_map(|(g, p)| [*g, *p]).collect();
        let f1s: Vec<f64> = labels
            .iter()
            .map(|&l| {
                let count = |f: &dyn Fn(&str, &str) -> bool| {
                    pairs.iter().filter(|(g, p)| f(g, p)).count() as f64
                };
                let tp = count(&|g, p| g == l && p == l);
                let fp = count(&|g, p| g != l && p == l);
                let fn_ = count(&|g, p| g == l && p != l);
                if tp == 0.0 {
                    0.0
                } else {
                    2.0 * tp / (2.0 * tp + fp + fn_)
                }
            })
            .collect();
        IntentScores {
            examples: pairs.len(),
            correct,
            accuracy: ratio(correct, pairs.len()),
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
        }
    }
}

/// CLINC150's out-of-scope figures, for data where gold or answers include `oos`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutOfScopeScores {
    /// Right answers among in-scope examples (an `oos` answer is wrong there).
    pub in_scope_accuracy: f64,
    /// Out-of-scope examples answered `oos`.
    pub recall: f64,
    /// `oos` answers that were out of scope.
    pub precision: f64,
}

impl OutOfScopeScores {
    /// None unless some gold label or answer is `oos`.
    pub fn of(pairs: &[(&str, &str)]) -> Option<OutOfScopeScores> {
        const OOS: &str = OUT_OF_SCOPE;
        if !pairs.iter().any(|(g, p)| *g == OOS || *p == OOS) {
            return None;
        }
        let count = |f: &dyn Fn(&str, &str) -> bool| pairs.iter().filter(|(g, p)| f(g, p)).count();
        Some(OutOfScopeScores {
            in_scope_accuracy: ratio(count(&|g, p| g != OOS && g == p), count(&|g, _| g != OOS)),
            recall: ratio(count(&|g, p| g == OOS && p == OOS), count(&|g, _| g == OOS)),
            precision: ratio(count(&|g, p| g == OOS && p == OOS), count(&|_, p| p == OOS)),
        })
    }
}

/// Span-level scores: a predicted slot counts only if name, start and end all match a gold
/// one (CoNLL's exact match), micro-averaged over all slots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpanScores {
    pub gold: usize,
    pub predicted: usize,
    pub correct: usize,
}

impl SpanScores {
    /// Adds one utterance's gold and predicted slots.
    pub fn add(&mut self, gold: &[ByteSpan], predicted: &[ByteSpan]) {
        let mut unmatched: Vec<&ByteSpan> = gold.iter().collect();
        for p in predicted {
            if let Some(i) = unmatched.iter().position(|g| *g == p) {
                unmatched.swap_remove(i);
                self.correct += 1;
            }
        }
        self.gold += gold.len();
        self.predicted += predicted.len();
    }

    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.gold)
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

pub(crate) fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_counts_exact_matches_only() {
        let span = |start, end, slot: &str| ByteSpan {
            start,
            end,
            slot: slot.into(),
        };
        let mut s = SpanScores::default();
        s.add(
            &[span(0, 4, "a"), span(5, 9, "b")],
            &[span(0, 4, "a"), span(5, 8, "b"), span(10, 12, "c")],
        );
        assert_eq!((s.gold, s.predicted, s.correct), (2, 3, 1));
        assert!((s.precision() - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.recall() - 0.5).abs() < 1e-12);
        assert!((s.f1() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn intent_and_out_of_scope_scores() {
        let pairs = [
            ("a", "a"),
            ("a", "b"),
            ("b", "b"),
            ("oos", "oos"),
            ("oos", "a"),
            ("b", "oos"),
        ];
        let s = IntentScores::of(&pairs);
        assert_eq!((s.examples, s.correct), (6, 3));
        let o = OutOfScopeScores::of(&pairs).unwrap();
        assert!((o.in_scope_accuracy - 0.5).abs() < 1e-12);
        assert!((o.recall - 0.5).abs() < 1e-12);
        assert!((o.precision - 0.5).abs() < 1e-12);
        assert_eq!(OutOfScopeScores::of(&[("a", "a")]), None);
    }
}
