//! Every kind of filter condition, from Qdrant's filter JSON to the gRPC message a Qdrant server
//! must receive, compared whole with the message written out by hand.

use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{self as grpc};
use serde_json::{Value, json};

use super::SearchFilter;

fn grpc_of(json: Value) -> grpc::Filter {
    SearchFilter::parse(&json).unwrap().to_grpc().unwrap()
}

fn must(conditions: Vec<ConditionOneOf>) -> grpc::Filter {
    let must = conditions.into_iter().map(|c| grpc::Condition { condition_one_of: Some(c) }).collect();
    grpc::Filter { must, ..Default::default() }
}

fn field(key: &str, condition: grpc::FieldCondition) -> ConditionOneOf {
    ConditionOneOf::Field(grpc::FieldCondition { key: key.into(), ..condition })
}

fn matching(key: &str, value: MatchValue) -> ConditionOneOf {
    field(key, grpc::FieldCondition { r#match: Some(grpc::Match { match_value: Some(value) }), ..Default::default() })
}

fn point(lat: f64, lon: f64) -> grpc::GeoPoint {
    grpc::GeoPoint { lat, lon }
}

#[test]
fn every_match_kind() {
    let json = json!({"must": [
        {"key": "city", "match": {"value": "Paris"}},
        {"key": "level", "match": {"value": 3}},
        {"key": "remote", "match": {"value": true}},
        {"key": "bio", "match": {"text": "search engines"}},
        {"key": "bio", "match": {"text_any": "rust go"}},
        {"key": "bio", "match": {"phrase": "machine learning"}},
        {"key": "tags", "match": {"any": ["rust", "go"]}},
        {"key": "years", "match": {"any": [1, 2]}},
        {"key": "tags", "match": {"except": ["php"]}},
        {"key": "years", "match": {"except": [7]}}
    ]});
    let strings = |s: &[&str]| grpc::RepeatedStrings { strings: s.iter().map(|s| s.to_string()).collect() };
    let expected = must(vec![
        matching("city", MatchValue::Keyword("Paris".into())),
        matching("level", MatchValue::Integer(3)),
        matching("remote", MatchValue::Boolean(true)),
        matching("bio", MatchValue::Text("search engines".into())),
        matching("bio", MatchValue::TextAny("rust go".into())),
        matching("bio", MatchValue::Phrase("machine learning".into())),
        matching("tags", MatchValue::Keywords(strings(&["rust", "go"]))),
        matching("years", MatchValue::Integers(grpc::RepeatedIntegers { integers: vec![1, 2] })),
        matching("tags", MatchValue::ExceptKeywords(strings(&["php"]))),
        matching("years", MatchValue::ExceptIntegers(grpc::RepeatedIntegers { integers: vec![7] })),
    ]);
    assert_eq!(grpc_of(json), expected);
}

#[test]
fn ranges_datetimes_and_value_counts() {
    let json = json!({"must": [
        {"key": "age", "range": {"gte": 18, "lt": 65.5}},
        {"key": "score", "range": {"gt": -1.0, "lte": 1.0}},
        {"key": "joined", "range": {"gte": "2024-01-02T03:04:05.000006Z", "lt": "2025-01-01T00:00:00Z"}},
        {"key": "skills", "values_count": {"gte": 2, "lt": 10}}
    ]});
    let timestamp = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
    let expected = must(vec![
        field(
            "age",
            grpc::FieldCondition {
                range: Some(grpc::Range { gte: Some(18.0), lt: Some(65.5), gt: None, lte: None }),
                ..Default::default()
            },
        ),
        field(
            "score",
            grpc::FieldCondition {
                range: Some(grpc::Range { gt: Some(-1.0), lte: Some(1.0), gte: None, lt: None }),
                ..Default::default()
            },
        ),
        field(
            "joined",
            grpc::FieldCondition {
                datetime_range: Some(grpc::DatetimeRange {
                    gte: Some(timestamp(1_704_164_645, 6_000)),
                    lt: Some(timestamp(1_735_689_600, 0)),
                    gt: None,
                    lte: None,
                }),
                ..Default::default()
            },
        ),
        field(
            "skills",
            grpc::FieldCondition {
                values_count: Some(grpc::ValuesCount { gte: Some(2), lt: Some(10), gt: None, lte: None }),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(grpc_of(json), expected);
}

#[test]
fn geo_radius_bounding_box_and_polygon_with_a_hole() {
    let ring =
        |points: &[(f64, f64)]| points.iter().map(|&(lat, lon)| json!({"lat": lat, "lon": lon})).collect::<Vec<_>>();
    let outer = [(48.0, 2.0), (49.0, 2.0), (49.0, 3.0), (48.0, 2.0)];
    let hole = [(48.4, 2.4), (48.6, 2.4), (48.6, 2.6), (48.4, 2.4)];
    let json = json!({"must": [
        {"key": "at", "geo_radius": {"center": {"lat": 48.85, "lon": 2.35}, "radius": 10000.0}},
        {"key": "at", "geo_bounding_box": {"top_left": {"lat": 49.0, "lon": 2.0}, "bottom_right": {"lat": 48.0, "lon": 3.0}}},
        {"key": "at", "geo_polygon": {"exterior": {"points": ring(&outer)}, "interiors": [{"points": ring(&hole)}]}}
    ]});
    let line =
        |points: &[(f64, f64)]| grpc::GeoLineString { points: points.iter().map(|&(a, o)| point(a, o)).collect() };
    let expected = must(vec![
        field(
            "at",
            grpc::FieldCondition {
                geo_radius: Some(grpc::GeoRadius { center: Some(point(48.85, 2.35)), radius: 10000.0 }),
                ..Default::default()
            },
        ),
        field(
            "at",
            grpc::FieldCondition {
                geo_bounding_box: Some(grpc::GeoBoundingBox {
                    top_left: Some(point(49.0, 2.0)),
                    bottom_right: Some(point(48.0, 3.0)),
                }),
                ..Default::default()
            },
        ),
        field(
            "at",
            grpc::FieldCondition {
                geo_polygon: Some(grpc::GeoPolygon { exterior: Some(line(&outer)), interiors: vec![line(&hole)] }),
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(grpc_of(json), expected);
}

#[test]
fn emptiness_ids_vectors_nesting_and_the_clauses() {
    let json = json!({
        "must": [
            {"is_empty": {"key": "deleted"}},
            {"is_null": {"key": "manager"}},
            {"has_id": [7, "5f0e8a4e-2a4b-4b53-9c0e-5ab41f3e2c77"]},
            {"has_vector": "fast-multilingual-e5-large"},
            {"nested": {"key": "jobs", "filter": {"must": [{"key": "title", "match": {"value": "engineer"}}]}}},
            {"must_not": [{"key": "city", "match": {"value": "Lyon"}}]}
        ],
        "should": [{"key": "remote", "match": {"value": true}}],
        "must_not": [{"key": "level", "match": {"value": 1}}],
        "min_should": {"conditions": [{"key": "tags", "match": {"value": "rust"}}, {"key": "tags", "match": {"value": "go"}}], "min_count": 1}
    });
    let condition = |c: ConditionOneOf| grpc::Condition { condition_one_of: Some(c) };
    let ids = vec![
        grpc::PointId { point_id_options: Some(PointIdOptions::Num(7)) },
        grpc::PointId { point_id_options: Some(PointIdOptions::Uuid("5f0e8a4e-2a4b-4b53-9c0e-5ab41f3e2c77".into())) },
    ];
    let expected = grpc::Filter {
        must: vec![
            condition(ConditionOneOf::IsEmpty(grpc::IsEmptyCondition { key: "deleted".into() })),
            condition(ConditionOneOf::IsNull(grpc::IsNullCondition { key: "manager".into() })),
            condition(ConditionOneOf::HasId(grpc::HasIdCondition { has_id: ids })),
            condition(ConditionOneOf::HasVector(grpc::HasVectorCondition {
                has_vector: "fast-multilingual-e5-large".into(),
            })),
            condition(ConditionOneOf::Nested(grpc::NestedCondition {
                key: "jobs".into(),
                filter: Some(must(vec![matching("title", MatchValue::Keyword("engineer".into()))])),
            })),
            condition(ConditionOneOf::Filter(grpc::Filter {
                must_not: vec![condition(matching("city", MatchValue::Keyword("Lyon".into())))],
                ..Default::default()
            })),
        ],
        should: vec![condition(matching("remote", MatchValue::Boolean(true)))],
        must_not: vec![condition(matching("level", MatchValue::Integer(1)))],
        min_should: Some(grpc::MinShould {
            conditions: vec![
                condition(matching("tags", MatchValue::Keyword("rust".into()))),
                condition(matching("tags", MatchValue::Keyword("go".into()))),
            ],
            min_count: 1,
        }),
    };
    assert_eq!(grpc_of(json), expected);
}
