//! Evaluation measures: ROC AUC and the detection rate at a fixed false-positive rate.

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting half (the Mann-Whitney statistic). `None` when a side is empty.
pub fn auc(pos: &[f32], neg: &[f32]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of positive ranks with ties given their mean rank.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        let p = all[i..j].iter().filter(|x| x.1).count();
        rank_sum += mean_rank * p as f64;
        i = j;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// The threshold that lets at most `fpr` of the negatives through (a negative is a false
/// positive when its score is strictly above the threshold).
pub fn threshold_at(neg: &[f32], fpr: f64) -> f32 {
    let mut s: Vec<f32> = neg.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * s.len() as f64).floor() as usize;
    // The `allowed`-th highest negative score (0-based) is the threshold: exactly `allowed`
    // negatives lie above it, unless ties push more to it (they then stay at or below).
    s.get(allowed).copied().unwrap_or(f32::NEG_INFINITY)
}

/// How many of `v` lie strictly above `threshold`.
pub fn count_above(v: &[f32], threshold: f32) -> usize {
    v.iter().filter(|&&s| s > threshold).count()
}

/// Fraction of `pos` strictly above `threshold`.
pub fn detection(pos: &[f32], threshold: f32) -> f64 {
    if pos.is_empty() {
        return 0.0;
    }
    count_above(pos, threshold) as f64 / pos.len() as f64
}

/// The fewest negatives a threshold must let through for `target` of `pos` to lie strictly
/// above it: `(negatives let through, threshold)`. `None` when no threshold at a negative's
/// score reaches the target (or a side is empty).
pub fn negatives_for_detection(pos: &[f32], neg: &[f32], target: f64) -> Option<(usize, f32)> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut n: Vec<f32> = neg.to_vec();
    n.sort_by(|a, b| b.total_cmp(a));
    let mut p: Vec<f32> = pos.to_vec();
    p.sort_by(|a, b| b.total_cmp(a));
    let need = (target * p.len() as f64).ceil() as usize;
    // Thresholds run down the negatives' scores; at the k-th highest (0-based) exactly the
    // negatives strictly above it pass, which is k unless ties hold more at that score.
    let mut above = 0usize;
    for (k, &t) in n.iter().enumerate() {
        while above < p.len() && p[above] > t {
            above += 1;
        }
        if above >= need {
            return Some((count_above(&n[..k], t), t));
        }
    }
    None
}

/// Fraction of `neg` strictly above `threshold`.
pub fn false_positive_rate(neg: &[f32], threshold: f32) -> f64 {
    detection(neg, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auc(&[0.1], &[0.9]), Some(0.0));
        assert_eq!(auc(&[0.5], &[0.5]), Some(0.5));
        // 3 positives, 2 negatives: pairs won 5 of 6.
        let a = auc(&[0.9, 0.6, 0.3], &[0.4, 0.1]).unwrap_or(0.0);
        assert!((a - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(auc(&[], &[0.1]), None);
    }

    #[test]
    fn threshold_and_detection() {
        let neg: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_at(&neg, 0.01);
        assert!(false_positive_rate(&neg, t) <= 0.01);
        assert!((false_positive_rate(&neg, t) - 0.01).abs() < 1e-9);
        assert_eq!(detection(&[0.995, 0.5, 0.999], t), 2.0 / 3.0);
        // Zero allowed: above the highest negative only.
        let t0 = threshold_at(&neg, 0.0);
        assert_eq!(t0, 0.999);
        assert_eq!(false_positive_rate(&neg, t0), 0.0);
    }

    #[test]
    fn negatives_for_a_detection_target() {
        let neg = [0.1, 0.9, 0.5, 0.7, 0.3];
        // Half of these above: 0.8 and 0.95 clear 0.7, with one negative (0.9) above it.
        let pos = [0.95, 0.8, 0.6, 0.2];
        assert_eq!(negatives_for_detection(&pos, &neg, 0.5), Some((1, 0.7)));
        // All four: 0.2 clears only the lowest negative, four let through.
        assert_eq!(negatives_for_detection(&pos, &neg, 1.0), Some((4, 0.1)));
        // Below the lowest negative there is no negative's score to stand on.
        assert_eq!(negatives_for_detection(&[0.95, 0.05], &neg, 1.0), None);
        // Three of four: 0.6 clears 0.5, with 0.9 and 0.7 above it.
        assert_eq!(negatives_for_detection(&pos, &neg, 0.75), Some((2, 0.5)));
        // One: 0.95 clears the highest negative, none let through.
        assert_eq!(negatives_for_detection(&pos, &neg, 0.25), Some((0, 0.9)));
        assert_eq!(negatives_for_detection(&[], &neg, 0.5), None);
    }
}
