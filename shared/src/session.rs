//! One ONNX Runtime session: checks the graph against the model kind, feeds a padded batch and
//! turns the first output into one vector per sequence (pooled embedding, or a reranker logit).

use std::borrow::Cow;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, ValueType};

use crate::model::{ModelDir, ModelError, ModelKind};
use crate::pooling::{Pooling, l2_normalize, pool};
use crate::tokenize::Encoded;

#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// ONNX Runtime intra-op threads for this session.
    pub intra_threads: usize,
    /// Whether idle intra-op threads spin-wait for work (ONNX Runtime's default) instead of
    /// sleeping; spinning lowers latency but takes CPU from the service's other threads.
    pub spinning: bool,
}

/// How the first output of the graph is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    /// `[batch, seq, dim]` token states (`last_hidden_state`), pooled here.
    TokenStates { pooling: Pooling, normalize: bool },
    /// `[batch, dim]` already pooled (`sentence_embedding`).
    Pooled { normalize: bool },
    /// `[batch, 1]` or `[batch]` relevance logits of a cross-encoder.
    Logits,
}

#[derive(Debug, thiserror::Error)]
#[error("inference failed: {0}")]
pub struct InferenceError(pub String);

pub struct InferenceSession {
    session: Session,
    output: Output,
    feeds_token_types: bool,
    pad_id: i64,
    dimension: Option<usize>,
}

impl InferenceSession {
    /// Loads `model.onnx` and checks that its inputs and first output fit the directory's kind.
    pub fn load(dir: &ModelDir, pad_id: i64, options: SessionOptions) -> Result<Self, ModelError> {
        let path = dir.onnx_path();
        let onnx_error = |message: String| ModelError::Onnx { path: path.clone(), message };
        let env = crate::runtime::environment().map_err(|e| onnx_error(e.to_string()))?;
        let text = |e: ort::Error<_>| e.to_string();
        let session = Session::builder(env)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::All).map_err(text))
            .and_then(|b| b.with_intra_threads(options.intra_threads.max(1)).map_err(text))
            .and_then(|b| b.with_intra_op_spinning(options.spinning).map_err(text))
            // Shapes change with every batch: memory patterns and the arena would keep the
            // high-water mark of every shape seen, so both are off to keep RSS flat.
            .and_then(|b| b.with_memory_pattern(false).map_err(text))
            .and_then(|b| {
                b.with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()]).map_err(text)
            })
            .and_then(|mut b| b.commit_from_file(&path).map_err(|e| e.to_string()))
            .map_err(onnx_error)?;

        let graph_error = |message: String| ModelError::Graph { path: path.clone(), kind: dir.config.kind, message };
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for required in ["input_ids", "attention_mask"] {
            if !names.contains(&required) {
                return Err(graph_error(format!("no `{required}` input (inputs: {names:?})")));
            }
        }
        if let Some(other) = names.iter().find(|n| !["input_ids", "attention_mask", "token_type_ids"].contains(n)) {
            return Err(graph_error(format!("unsupported input `{other}`")));
        }
        let feeds_token_types = names.contains(&"token_type_ids");

        let first = session.outputs().first().ok_or_else(|| graph_error("the graph has no output".into()))?;
        let shape: Vec<i64> = match first.dtype() {
            ValueType::Tensor { shape, .. } => shape.to_vec(),
            other => {
                return Err(graph_error(format!("first output `{}` is not a tensor: {other:?}", first.name())));
            }
        };
        let static_last = shape.last().and_then(|&d| usize::try_from(d).ok()).filter(|&d| d > 0);
        let (output, dimension) = match (dir.config.kind, shape.len()) {
            (ModelKind::Embedding, 3) => {
                (Output::TokenStates { pooling: dir.config.pooling(), normalize: dir.config.normalize() }, static_last)
            }
            // A one-wide output is a classifier's logit, not an embedding.
            (ModelKind::Embedding, 2) if shape[1] != 1 => {
                (Output::Pooled { normalize: dir.config.normalize() }, static_last)
            }
            (ModelKind::Reranker, 1) => (Output::Logits, Some(1)),
            (ModelKind::Reranker, 2) if matches!(shape[1], 1 | -1) => (Output::Logits, Some(1)),
            (kind, _) => {
                return Err(graph_error(format!(
                    "first output `{}` has shape {shape:?}, which a {kind:?} model cannot use",
                    first.name()
                )));
            }
        };
        Ok(Self { session, output, feeds_token_types, pad_id, dimension })
    }

    /// The output dimension when the graph declares it statically.
    pub fn dimension(&self) -> Option<usize> {
        self.dimension
    }

    /// Runs one batch, padded to its longest sequence; returns one vector per sequence, in order.
    pub fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let rows = batch.len();
        let width = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        if rows == 0 || width == 0 {
            return Ok(vec![Vec::new(); rows]);
        }
        let mut ids = vec![self.pad_id; rows * width];
        let mut mask = vec![0i64; rows * width];
        let mut types = vec![0i64; if self.feeds_token_types { rows * width } else { 0 }];
        for (row, e) in batch.iter().enumerate() {
            let start = row * width;
            ids[start..start + e.len()].copy_from_slice(&e.ids);
            mask[start..start + e.len()].fill(1);
            if self.feeds_token_types {
                types[start..start + e.len()].copy_from_slice(&e.type_ids);
            }
        }
        let shape = [rows, width];
        let error = |e: ort::Error| InferenceError(e.to_string());
        let mut inputs: Vec<(Cow<'_, str>, ort::session::SessionInputValue<'_>)> = vec![
            ("input_ids".into(), Tensor::from_array((shape, ids)).map_err(error)?.into()),
            ("attention_mask".into(), Tensor::from_array((shape, mask.clone())).map_err(error)?.into()),
        ];
        if self.feeds_token_types {
            inputs.push(("token_type_ids".into(), Tensor::from_array((shape, types)).map_err(error)?.into()));
        }
        let output = self.output;
        let outputs = self.session.run(inputs).map_err(error)?;
        let (out_shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(error)?;
        read_output(output, out_shape, data, rows, width, &mask)
    }
}

fn read_output(
    output: Output,
    shape: &[i64],
    data: &[f32],
    rows: usize,
    width: usize,
    mask: &[i64],
) -> Result<Vec<Vec<f32>>, InferenceError> {
    let unexpected = || InferenceError(format!("unexpected output shape {shape:?} for a batch of {rows}x{width}"));
    match output {
        Output::TokenStates { pooling, normalize } => {
            let dim = match shape {
                [b, t, d] if *b as usize == rows && *t as usize == width => *d as usize,
                _ => return Err(unexpected()),
            };
            Ok((0..rows)
                .map(|row| {
                    let hidden = &data[row * width * dim..(row + 1) * width * dim];
                    let mut v = pool(hidden, dim, &mask[row * width..(row + 1) * width], pooling);
                    if normalize {
                        l2_normalize(&mut v);
                    }
                    v
                })
                .collect())
        }
        Output::Pooled { normalize } => {
            let dim = match shape {
                [b, d] if *b as usize == rows => *d as usize,
                _ => return Err(unexpected()),
            };
            Ok(data
                .chunks_exact(dim)
                .map(|v| {
                    let mut v = v.to_vec();
                    if normalize {
                        l2_normalize(&mut v);
                    }
                    v
                })
                .collect())
        }
        Output::Logits => {
            let per_row = match shape {
                [b] if *b as usize == rows => 1,
                [b, n] if *b as usize == rows && *n >= 1 => *n as usize,
                _ => return Err(unexpected()),
            };
            Ok(data.chunks_exact(per_row).map(|row| vec![row[0]]).collect())
        }
    }
}

impl crate::batcher::Model for InferenceSession {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        InferenceSession::run(self, batch).map_err(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    //! Numerics against golden outputs computed by `models/tools/make_goldens.py` with the
    //! reference stack (onnxruntime + numpy, one text at a time) on the same fixture models.

    use serde_json::Value;

    use super::*;
    use crate::runtime::project_root;
    use crate::tokenize::{InputType, TextTokenizer};

    const TOLERANCE: f32 = 1e-5;

    fn golden(name: &str) -> Value {
        let path = project_root().join("models/fixtures/goldens").join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    fn ints(v: &Value) -> Vec<i64> {
        v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= TOLERANCE, "{what}: max abs difference {worst} > {TOLERANCE}");
    }

    fn load(name: &str, pooling: Option<Pooling>) -> (InferenceSession, TextTokenizer) {
        let mut dir = ModelDir::open(project_root().join("models/fixtures").join(name)).unwrap();
        if pooling.is_some() {
            dir.config.pooling = pooling;
        }
        let tokenizer = TextTokenizer::load(&dir.tokenizer_path(), &dir.config).unwrap();
        let session =
            InferenceSession::load(&dir, tokenizer.pad_id(), SessionOptions { intra_threads: 1, spinning: true })
                .unwrap();
        (session, tokenizer)
    }

    fn input_type(v: &Value) -> InputType {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn embeddings_match_the_reference_alone_and_batched() {
        let golden = golden("tiny-e5.json");
        let cases = golden["cases"].as_array().unwrap();
        let (mut session, tokenizer) = load("tiny-e5", None);
        let encoded: Vec<Encoded> = cases
            .iter()
            .map(|c| tokenizer.encode(c["text"].as_str().unwrap(), input_type(&c["input_type"])).unwrap())
            .collect();
        for (case, e) in cases.iter().zip(&encoded) {
            assert_eq!(e.ids, ints(&case["ids"]), "token ids of {:?}", case["text"]);
        }
        // Alone: no padding at all.
        for (case, e) in cases.iter().zip(&encoded) {
            let got = session.run(&[e]).unwrap();
            assert_close(&got[0], &floats(&case["mean_normalized"]), &format!("alone {:?}", case["input_type"]));
        }
        // Together: one batch padded to the longest (the truncated long text), so padding must not leak.
        let batch: Vec<&Encoded> = encoded.iter().collect();
        let got = session.run(&batch).unwrap();
        for (case, v) in cases.iter().zip(&got) {
            assert_close(v, &floats(&case["mean_normalized"]), &format!("batched {:?}", case["text"]));
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "normalised: {norm}");
        }
    }

    #[test]
    fn cls_pooling_matches_the_reference() {
        let golden = golden("tiny-e5.json");
        let (mut session, tokenizer) = load("tiny-e5", Some(Pooling::Cls));
        let cases = golden["cases"].as_array().unwrap();
        let encoded: Vec<Encoded> = cases
            .iter()
            .map(|c| tokenizer.encode(c["text"].as_str().unwrap(), input_type(&c["input_type"])).unwrap())
            .collect();
        let got = session.run(&encoded.iter().collect::<Vec<_>>()).unwrap();
        for (case, v) in cases.iter().zip(&got) {
            assert_close(v, &floats(&case["cls_normalized"]), "cls");
        }
    }

    fn check_reranker(name: &str) {
        let golden = golden(&format!("{name}.json"));
        let (mut session, tokenizer) = load(name, None);
        let query = golden["query"].as_str().unwrap();
        let cases = golden["cases"].as_array().unwrap();
        let encoded: Vec<Encoded> =
            cases.iter().map(|c| tokenizer.encode_pair(query, c["document"].as_str().unwrap()).unwrap()).collect();
        for (case, e) in cases.iter().zip(&encoded) {
            assert_eq!(e.ids, ints(&case["ids"]), "{name}: ids of {:?}", case["document"]);
            assert_eq!(e.type_ids, ints(&case["type_ids"]), "{name}: type ids");
        }
        let got = session.run(&encoded.iter().collect::<Vec<_>>()).unwrap();
        for (case, v) in cases.iter().zip(&got) {
            assert_close(v, &[case["logit"].as_f64().unwrap() as f32], &format!("{name}: logit"));
        }
    }

    #[test]
    fn xlmr_reranker_logits_match_the_reference() {
        check_reranker("tiny-reranker");
    }

    #[test]
    fn bert_reranker_with_token_types_matches_the_reference() {
        check_reranker("tiny-bert-reranker");
    }

    #[test]
    fn a_reranker_graph_is_refused_as_an_embedder() {
        let mut dir = ModelDir::open(project_root().join("models/fixtures/tiny-reranker")).unwrap();
        dir.config.kind = ModelKind::Embedding;
        let err = InferenceSession::load(&dir, 1, SessionOptions { intra_threads: 1, spinning: true })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot use"), "{err}");
    }
}
