//! Benchmarks behind `atlas bench`. Each prints progress on stderr and
//! returns a report that the CLI prints as one JSON object, last.

pub mod cdc;
mod codec;
pub mod coldstart;
pub mod ingest;
pub mod plugin;
pub mod query;
mod scratch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The value at rank ⌈p·n⌉ of `v` (p50, p99, ...), sorting `v`; 0 for none.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// To three decimals, as the reports print most figures.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0, "the lowest");
        assert_eq!(percentile(&mut v, 1.0), 100.0, "the highest");
        assert_eq!(percentile(&mut [], 0.99), 0.0);
    }
}
