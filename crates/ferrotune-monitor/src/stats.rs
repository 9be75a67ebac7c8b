//! Tail probabilities of the detection tests, summed in log space.

/// `ln C(n, k)`.
fn ln_choose(n: u64, k: u64) -> f64 {
    let (n, k) = (n as f64, k as f64);
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `ln B(a, b)`.
fn ln_beta(a: f64, b: f64) -> f64 {
    libm::lgamma(a) + libm::lgamma(b) - libm::lgamma(a + b)
}

/// Sum of `exp(terms)` without overflow.
fn sum_exp(terms: impl Iterator<Item = f64>) -> f64 {
    let terms: Vec<f64> = terms.collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return 0.0;
    }
    (max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>()).min(1.0)
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`.
pub(crate) fn binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    sum_exp((k..=n).map(|x| ln_choose(n, x) + x as f64 * p.ln() + (n - x) as f64 * (1.0 - p).ln()))
}

/// `P(X >= k)` for `X ~ BetaBinomial(n, a, b)`: a binomial count whose rate
/// itself varies from window to window as `Beta(a, b)`.
pub(crate) fn beta_binomial_tail(k: u64, n: u64, a: f64, b: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let base = ln_beta(a, b);
    sum_exp((k..=n).map(|x| ln_choose(n, x) + ln_beta(x as f64 + a, (n - x) as f64 + b) - base))
}

/// `P(X >= k)` for `X ~ Poisson(lambda)`.
pub(crate) fn poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let ln_pmf = |x: u64| x as f64 * lambda.ln() - lambda - libm::lgamma(x as f64 + 1.0);
    let below = sum_exp((0..k).map(ln_pmf));
    (1.0 - below).max(sum_exp((k..k.saturating_add(64)).map(ln_pmf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_hand_sums() {
        // P(X >= 3 | 4, 0.3) = 4 * 0.3^3 * 0.7 + 0.3^4.
        assert!((binomial_tail(3, 4, 0.3) - 0.0837).abs() < 1e-12);
        assert_eq!(binomial_tail(0, 10, 0.5), 1.0);
        assert!((binomial_tail(10, 10, 0.5) - 0.5f64.powi(10)).abs() < 1e-15);
        // 60 of 100 against 30%: far in the tail (scipy: 1.2e-9).
        let p = binomial_tail(60, 100, 0.3);
        assert!(p > 1e-10 && p < 1e-8, "{p}");
        // Beta-binomial: a = b = 1 is uniform over 0..=n.
        assert!((beta_binomial_tail(8, 10, 1.0, 1.0) - 3.0 / 11.0).abs() < 1e-12);
        // Large a + b tends to the binomial.
        let (bb, bin) = (beta_binomial_tail(40, 100, 3e5, 7e5), binomial_tail(40, 100, 0.3));
        assert!((bb - bin).abs() / bin < 1e-3, "{bb} {bin}");
        // Poisson: P(X >= 2 | 1) = 1 - 2/e.
        assert!((poisson_tail(2, 1.0) - (1.0 - 2.0 / std::f64::consts::E)).abs() < 1e-12);
        assert!(poisson_tail(300, 100.0) < 1e-40);
    }
}
