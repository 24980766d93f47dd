use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::{Figures, Judged};

fn judged(pairs: &[(&str, i64)]) -> Judged {
    pairs.iter().map(|(d, r)| (d.to_string(), *r)).collect()
}

fn ranking(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn figures_of_a_small_case_worked_by_hand() {
    let j = judged(&[("a", 2), ("b", 0), ("c", 1)]);
    let f = Figures::of(&ranking(&["b", "a", "x", "c"]), &j);
    // DCG = 2/log2(3) + 1/log2(5); ideal = 2/log2(2) + 1/log2(3).
    let dcg = 2.0 / 3f64.log2() + 1.0 / 5f64.log2();
    let idcg = 2.0 + 1.0 / 3f64.log2();
    assert!((f.ndcg_10 - dcg / idcg).abs() < 1e-12);
    assert_eq!((f.mrr_10, f.recall_10, f.p_10), (0.5, 1.0, 0.2));
    assert_eq!(f.judged_10, 0.3, "b, a and c are judged; x is not");
}

#[test]
fn nothing_relevant_found_or_judged_is_zero_not_nan() {
    let f = Figures::of(&ranking(&["x", "y"]), &judged(&[("a", 0)]));
    assert_eq!(f, Figures::default());
    assert_eq!(Figures::mean(&[]), Figures::default());
    let late = Figures::of(&(0..20).map(|i| format!("d{i}")).collect::<Vec<_>>(), &judged(&[("d15", 3)]));
    assert_eq!((late.mrr_10, late.ndcg_10, late.recall_10, late.recall_50), (0.0, 0.0, 0.0, 1.0));
}

/// A small deterministic generator, so the cases are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// 60 queries with graded judgments (0-4, some queries with nothing relevant) and rankings of 1 to
/// 150 documents drawn from judged and unjudged ones.
fn cases() -> (BTreeMap<String, Judged>, BTreeMap<String, Vec<String>>) {
    let mut rng = Lcg(7);
    let (mut qrels, mut runs) = (BTreeMap::new(), BTreeMap::new());
    for q in 0..60 {
        let mut j = Judged::new();
        for _ in 0..rng.below(40) + 1 {
            let grade = if q % 10 == 9 { 0 } else { rng.below(5) as i64 };
            j.insert(format!("d{}", rng.below(300)), grade);
        }
        let mut pool: Vec<String> = (0..300).map(|d| format!("d{d}")).collect();
        let len = rng.below(150) as usize + 1;
        let mut ranked = Vec::new();
        for _ in 0..len {
            let pick = rng.below(pool.len() as u64) as usize;
            ranked.push(pool.swap_remove(pick));
        }
        qrels.insert(format!("q{q}"), j);
        runs.insert(format!("q{q}"), ranked);
    }
    (qrels, runs)
}

#[test]
fn figures_equal_pytrec_evals_on_the_same_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup.sh (it installs pytrec_eval)", python.display());
    let (qrels, runs) = cases();
    let mut child = Command::new(&python)
        .arg(root.join("tests/eval/trec_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the pytrec_eval reference");
    let input = json!({"qrels": qrels, "runs": runs}).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the reference failed (is pytrec_eval installed? run scripts/setup.sh)");
    let reference: BTreeMap<String, Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reference.len(), runs.len(), "pytrec_eval evaluated every query");
    for (q, theirs) in &reference {
        let ours = serde_json::to_value(Figures::of(&runs[q], &qrels[q])).unwrap();
        for measure in ["ndcg_10", "mrr_10", "recall_10", "recall_20", "recall_30", "recall_50", "recall_100", "p_10"] {
            let (a, b) = (ours[measure].as_f64().unwrap(), theirs[measure].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-6, "{q} {measure}: ours {a}, pytrec_eval {b}");
        }
    }
}
