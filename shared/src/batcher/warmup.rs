//! What each inference thread does before it serves: build the model, run the warm-up batches
//! (memory reaches its working size before `/ready`), and, when outputs must not depend on the
//! batch, check that a sequence gives the same bits alone and padded beside another.

use super::calibrate::{Calibration, CalibrationSpec, calibrate};
use super::{Model, ModelFactory};
use crate::tokenize::Encoded;

/// A model ready to serve and what its warm-up showed.
pub(super) struct Warmed {
    pub model: Box<dyn Model>,
    /// The first warm-up sequence's output, run alone (its length is the output width).
    pub first_output: Option<Vec<f32>>,
    /// The probe found the first sequence's output changed when it shared a batch.
    pub batch_dependent: bool,
    /// What batching is worth, if this thread calibrated.
    pub calibration: Option<Calibration>,
}

/// Builds the model and runs `warmup`; with `probe`, then runs the first warm-up sequence beside
/// the last one (which pads it, when longer) and compares its output with its output alone; with
/// `calibration`, then times batches of its sequence (`calibrate`), unless the probe found that
/// every sequence must run alone anyway.
pub(super) fn load_and_warm(
    factory: &ModelFactory,
    warmup: &[Vec<Encoded>],
    probe: bool,
    calibration: Option<&CalibrationSpec>,
) -> Result<Warmed, String> {
    let mut model = factory()?;
    let mut first_output = None;
    for batch in warmup {
        let batch: Vec<&Encoded> = batch.iter().collect();
        let outputs = model.run(&batch).map_err(|e| format!("warm-up failed: {e}"))?;
        if first_output.is_none() {
            first_output = outputs.into_iter().next();
        }
    }
    let mut batch_dependent = false;
    let first = warmup.first().and_then(|b| b.first());
    let last = warmup.last().and_then(|b| b.last());
    if let (true, Some(first), Some(last), Some(alone)) = (probe, first, last, &first_output) {
        let outputs = model.run(&[first, last]).map_err(|e| format!("warm-up failed: {e}"))?;
        batch_dependent = !same_bits(&outputs[0], alone);
    }
    let calibration = match calibration {
        Some(spec) if !batch_dependent => {
            Some(calibrate(spec, |batch| model.timed_run(batch)).map_err(|e| format!("calibration failed: {e}"))?)
        }
        _ => None,
    };
    Ok(Warmed { model, first_output, batch_dependent, calibration })
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A model whose output for a sequence is its length plus, when `coupled`, a share of the
    /// batch's total length: what per-tensor dynamic quantization does to a real one.
    struct Fake {
        coupled: bool,
    }

    impl Model for Fake {
        fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
            let total: usize = batch.iter().map(|e| e.len()).sum();
            let company = if self.coupled { total as f32 / 1000.0 } else { 0.0 };
            Ok(batch.iter().map(|e| vec![e.len() as f32 + company]).collect())
        }
    }

    fn seq(len: usize) -> Encoded {
        Encoded { ids: vec![5; len], type_ids: vec![0; len] }
    }

    fn warm(coupled: bool, probe: bool) -> Warmed {
        let factory: ModelFactory = Arc::new(move || Ok(Box::new(Fake { coupled }) as Box<dyn Model>));
        load_and_warm(&factory, &[vec![seq(3)], vec![seq(40), seq(40)]], probe, None).unwrap()
    }

    #[test]
    fn the_probe_tells_a_batch_dependent_model_from_an_independent_one() {
        assert!(warm(true, true).batch_dependent);
        assert!(!warm(false, true).batch_dependent);
        assert!(!warm(true, false).batch_dependent, "no probe, no verdict");
        assert_eq!(warm(false, true).first_output, Some(vec![3.0]), "the first sequence alone");
    }
}
