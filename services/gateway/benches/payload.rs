//! payload bench: what reading the candidates' payloads costs in qdrant-edge, the part of a search
//! that grows with `candidates` and not with the collection. One shard (no journal, no gateway)
//! holding `--documents` points of `--dimension` random directions, each with a payload as the
//! gateway writes it (the text, the id, the content hash and five keys of the app's); the same
//! queries, interleaved, with no payload, the whole payload, only the text and id, and the
//! payloads read alone (`retrieve` of the ids the search found).
//!
//!     cargo bench -p search-gateway --bench payload -- --documents 10000 --text-bytes 1000

use std::time::Instant;

use clap::Parser;
use qdrant_edge::{
    DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, NamedQuery, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery, UpdateOperation,
    Vectors, WithPayloadInterface, WithVector,
};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    documents: usize,
    #[arg(long, default_value_t = 384)]
    dimension: usize,
    #[arg(long, default_value_t = 1000)]
    text_bytes: usize,
    /// Payloads in RAM instead of memory-mapped files (the gateway's default: on disk).
    #[arg(long)]
    payload_in_ram: bool,
    /// Leave the shard unoptimized (one plain segment, every search a scan).
    #[arg(long)]
    plain: bool,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Random(u64);

impl Random {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vector(&mut self, dimension: usize) -> Vec<f32> {
        (0..dimension).map(|_| self.next()).collect()
    }
}

fn fill(shard: &EdgeShard, args: &Args, random: &mut Random) {
    const WORDS: [&str; 10] =
        ["engineer", "design", "berlin", "rust", "search", "product", "manager", "data", "team", "ml"];
    for start in (0..args.documents).step_by(500) {
        let points = (start..(start + 500).min(args.documents))
            .map(|i| {
                let (mut text, mut k) = (String::new(), i);
                while text.len() < args.text_bytes {
                    text.push_str(WORDS[k % WORDS.len()]);
                    text.push(' ');
                    k = k.wrapping_mul(31).wrapping_add(7);
                }
                let payload = json!({"_doc_id": format!("profile-{i}"), "_text": text,
                    "_content_hash": format!("{i:064x}"), "name": format!("Person {i}"), "title": "Senior Engineer",
                    "city": "Berlin", "tags": ["rust", "search", "ml"], "url": format!("https://example.com/p/{i}")});
                PointStruct::new(PointId::NumId(i as u64), Vectors::from(random.vector(args.dimension)), payload).into()
            })
            .collect();
        let upsert =
            UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)));
        shard.update(upsert).expect("upsert");
    }
    if !args.plain {
        while shard.optimize().expect("optimize") {}
    }
}

fn median_p99(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[(ms.len() - 1) * 99 / 100])
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("a temp dir");
    let vector = EdgeVectorParamsBuilder::new(args.dimension, Distance::Cosine).build();
    let config =
        EdgeConfigBuilder::new().on_disk_payload(!args.payload_in_ram).vector(DEFAULT_VECTOR_NAME, vector).build();
    let shard = EdgeShard::new(dir.path(), config).expect("a shard");
    let mut random = Random(1);
    fill(&shard, &args, &mut random);
    println!(
        "payload bench: {} documents x {} dimensions, {}-byte texts, payloads {}, {} segment(s)",
        args.documents,
        args.dimension,
        args.text_bytes,
        if args.payload_in_ram { "in RAM" } else { "on disk (memory-mapped)" },
        shard.info().segments_count
    );
    let text_and_id = WithPayloadInterface::Fields(vec!["_text".parse().unwrap(), "_doc_id".parse().unwrap()]);
    let kinds = [WithPayloadInterface::Bool(false), WithPayloadInterface::Bool(true), text_and_id];
    let queries: Vec<Vec<f32>> = (0..args.queries).map(|_| random.vector(args.dimension)).collect();
    println!("| limit | no payload p50/p99 ms | whole payload | text and id | payloads read alone | per point µs |");
    println!("|---|---|---|---|---|---|");
    for limit in [10, 50, 200] {
        let mut ms = vec![Vec::new(); 4];
        // Round 0 warms the caches; the kinds alternate query by query, so drift hits all alike.
        for round in 0..5 {
            for (q, query) in queries.iter().enumerate() {
                // Each query's first search warms the caches for the others: whose turn that is
                // rotates.
                for k in (0..kinds.len()).map(|j| (q + j) % kinds.len()) {
                    let with_payload = &kinds[k];
                    let nearest = QueryEnum::Nearest(NamedQuery::default_dense(query.clone()));
                    let request = QueryRequest {
                        prefetches: Vec::new(),
                        query: Some(ScoringQuery::Vector(nearest)),
                        filter: None,
                        score_threshold: None,
                        limit,
                        offset: 0,
                        params: None,
                        with_vector: WithVector::Bool(false),
                        with_payload: with_payload.clone(),
                    };
                    let started = Instant::now();
                    let found = shard.query(request).expect("query");
                    let took = started.elapsed().as_secs_f64() * 1e3;
                    if k == 0 {
                        let ids: Vec<PointId> = found.iter().map(|p| p.id).collect();
                        let started = Instant::now();
                        let records = shard.retrieve(&ids, Some(WithPayloadInterface::Bool(true)), None).expect("read");
                        assert_eq!(records.len(), limit);
                        if round > 0 {
                            ms[3].push(started.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    if round > 0 {
                        ms[k].push(took);
                    }
                }
            }
        }
        let [none, whole, text, alone] = [0, 1, 2, 3].map(|k| median_p99(ms[k].clone()));
        println!(
            "| {limit} | {:.3}/{:.3} | {:.3}/{:.3} | {:.3}/{:.3} | {:.3}/{:.3} | {:.1} |",
            none.0,
            none.1,
            whole.0,
            whole.1,
            text.0,
            text.1,
            alone.0,
            alone.1,
            alone.0 * 1e3 / limit as f64
        );
    }
}
