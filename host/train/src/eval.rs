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

/// The policy's `max-out-of-scope` chosen on labelled validation answers: the cut on the
/// router's out-of-scope distance (1 − the nearest example's cosine) that maximizes overall
/// accuracy (an in-scope example right when answered with its intent, an out-of-scope one when
/// refused), and the scores it gives there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutOfScopeCut {
    /// Refuse above this distance (1: refuse nothing).
    pub max_out_of_scope: f32,
    /// Overall accuracy with the skill's answers alone.
    pub accuracy_without: f64,
    /// Overall accuracy when the distance above the cut is refused too.
    pub accuracy_with: f64,
    /// The out-of-scope scores without the cut and with it (None without any `oos`).
    pub without: Option<OutOfScopeScores>,
    pub with: Option<OutOfScopeScores>,
}

impl OutOfScopeCut {
    /// The cut for `examples`: (gold intent, the skill's answer, the router's distance).
    pub fn tune(examples: &[(&str, &str, f32)]) -> OutOfScopeCut {
        // Scored by similarity, so that accepted means "at least the threshold".
        let mut scored: Vec<(f32, bool, bool)> = examples
            .iter()
            .map(|&(gold, answer, d)| (1.0 - d, gold == answer, gold == OUT_OF_SCOPE))
            .collect();
        let threshold = edgenlu_models::softmax_head::accuracy_maximizing_threshold(&mut scored);
        let max_out_of_scope = if threshold <= 0.0 {
            1.0
        } else {
            1.0 - threshold
        };
        let cut: Vec<(&str, &str)> = examples
            .iter()
            .map(|&(gold, answer, d)| {
                (
                    gold,
                    if d > max_out_of_scope {
                        OUT_OF_SCOPE
                    } else {
                        answer
                    },
                )
            })
            .collect();
        let plain: Vec<(&str, &str)> = examples.iter().map(|&(g, a, _)| (g, a)).collect();
        OutOfScopeCut {
            max_out_of_scope,
            accuracy_without: IntentScores::of(&plain).accuracy,
            accuracy_with: IntentScores::of(&cut).accuracy,
            without: OutOfScopeScores::of(&plain),
            with: OutOfScopeScores::of(&cut),
        }
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

    #[test]
    fn out_of_scope_cut_refuses_what_is_far_and_keeps_what_is_near() {
        let examples = [
            ("a", "a", 0.1),
            ("b", "b", 0.3),
            ("a", "b", 0.35),
            ("oos", "a", 0.6),
            ("oos", "b", 0.7),
            ("b", "b", 0.8),
        ];
        let cut = OutOfScopeCut::tune(&examples);
        // Between 0.35 and 0.6: both out-of-scope refused, one in-scope lost.
        assert!((0.35..0.6).contains(&cut.max_out_of_scope), "{cut:?}");
        assert!((cut.accuracy_without - 3.0 / 6.0).abs() < 1e-12);
        assert!((cut.accuracy_with - 4.0 / 6.0).abs() < 1e-12);
        let with = cut.with.unwrap();
        assert!((with.recall - 1.0).abs() < 1e-12 && (with.precision - 2.0 / 3.0).abs() < 1e-12);
        // Nothing out of scope: refuse nothing.
        assert_eq!(
            OutOfScopeCut::tune(&[("a", "a", 0.9)]).max_out_of_scope,
            1.0
        );
    }
}
