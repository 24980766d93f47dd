//! Outputs that do not depend on their batch. search-gateway caches a cross-encoder's score per
//! (query, document) pair and serves it in place of a fresh one, which is only right if the same
//! pair gives the same bits whatever it was batched with.
//!
//! fp32 graphs do: a sequence scored alone and padded inside any batch gave identical bits (the
//! bench-shaped bge-reranker-base, the fixtures). ONNX Runtime's dynamic int8 quantization does
//! not: `DynamicQuantizeLinear` (what `quantize_dynamic` and the Xenova int8 exports emit) takes one
//! scale for a whole activation tensor, batch-mates and padding included, so a pair's logit moved
//! by up to 0.08 with its company (BENCHMARKS.md, "Exact scores"). An engine asked for exact
//! outputs therefore runs such a model one sequence at a time, and checks at warm-up that a
//! sequence alone and padded in a batch agree (see `batcher::warmup`).

use std::io::Read;
use std::path::Path;

/// Operators whose output for one sequence depends on the rest of the tensor: dynamic
/// quantization computes its scale over every row and padding position. The fused forms are what
/// ONNX Runtime's optimizer makes of them, in case a graph was saved after optimization.
const BATCH_DEPENDENT_OPS: [&str; 3] = ["DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"];

/// The first batch-dependent operator the graph file names, if any. An operator's type is a plain
/// string in the ONNX protobuf, so a byte search finds it without parsing the graph; the weights
/// of a large single-file model are read through once (a second or less from the page cache).
pub fn batch_dependent_op(onnx: &Path) -> std::io::Result<Option<&'static str>> {
    let mut file = std::fs::File::open(onnx)?;
    let longest = BATCH_DEPENDENT_OPS.iter().map(|op| op.len()).max().unwrap_or(0);
    let finders: Vec<_> = BATCH_DEPENDENT_OPS.iter().map(|op| (*op, memchr::memmem::Finder::new(op))).collect();
    let mut buffer = vec![0u8; 8 << 20];
    // Each read keeps the previous one's last bytes, so a name split across two reads is found.
    let mut kept = 0;
    loop {
        let read = file.read(&mut buffer[kept..])?;
        if read == 0 {
            return Ok(None);
        }
        let filled = kept + read;
        if let Some((op, _)) = finders.iter().find(|(_, finder)| finder.find(&buffer[..filled]).is_some()) {
            return Ok(Some(op));
        }
        kept = filled.min(longest - 1);
        buffer.copy_within(filled - kept..filled, 0);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn finds_dynamic_quantization_wherever_it_is() {
        let mut bytes = vec![7u8; (8 << 20) - 10];
        bytes.extend_from_slice(b"DynamicQuantizeLinear");
        bytes.extend_from_slice(&[0u8; 100]);
        assert_eq!(batch_dependent_op(file_with(&bytes).path()).unwrap(), Some("DynamicQuantizeLinear"));
        assert_eq!(batch_dependent_op(file_with(b"MatMul Gelu Softmax").path()).unwrap(), None);
    }

    #[test]
    fn the_fixtures_are_fp32_and_the_int8_fixture_is_not() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures");
        assert_eq!(batch_dependent_op(&fixtures.join("tiny-reranker/model.onnx")).unwrap(), None);
        assert_eq!(
            batch_dependent_op(&fixtures.join("tiny-reranker-int8/model.onnx")).unwrap(),
            Some("DynamicQuantizeLinear")
        );
    }
}
