//! The `filter` of a search: Qdrant's filter JSON, parsed once by qdrant-edge's own types (so it
//! is validated exactly as Qdrant would), and converted to gRPC for a Qdrant server.

use qdrant_client::qdrant as grpc;
use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_edge::{
    AnyVariants, Condition, DateTimeWrapper, FieldCondition, Filter, GeoPoint, Match, PointId, RangeInterface,
    ValueVariants,
};
use serde_json::Value;

/// A validated filter and its canonical JSON (used in cache keys).
#[derive(Debug, Clone)]
pub struct SearchFilter {
    pub(crate) parsed: Filter,
    canonical: String,
}

impl SearchFilter {
    pub fn parse(json: &Value) -> Result<Self, String> {
        let parsed: Filter = serde_json::from_value(json.clone()).map_err(|e| format!("invalid filter: {e}"))?;
        let mut canonical = String::new();
        super::canonical_json(json, &mut canonical);
        Ok(Self { parsed, canonical })
    }

    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The same filter for the Qdrant gRPC API.
    pub fn to_grpc(&self) -> Result<grpc::Filter, String> {
        filter(&self.parsed)
    }
}

fn filter(f: &Filter) -> Result<grpc::Filter, String> {
    let list = |conditions: &Option<Vec<Condition>>| -> Result<Vec<grpc::Condition>, String> {
        conditions.iter().flatten().map(condition).collect()
    };
    let min_should = match &f.min_should {
        Some(m) => Some(grpc::MinShould {
            conditions: m.conditions.iter().map(condition).collect::<Result<_, _>>()?,
            min_count: m.min_count as u64,
        }),
        None => None,
    };
    Ok(grpc::Filter { should: list(&f.should)?, must: list(&f.must)?, must_not: list(&f.must_not)?, min_should })
}

fn condition(c: &Condition) -> Result<grpc::Condition, String> {
    let one_of = match c {
        Condition::Field(field) => ConditionOneOf::Field(field_condition(field)?),
        Condition::IsEmpty(c) => ConditionOneOf::IsEmpty(grpc::IsEmptyCondition { key: c.is_empty.key.to_string() }),
        Condition::IsNull(c) => ConditionOneOf::IsNull(grpc::IsNullCondition { key: c.is_null.key.to_string() }),
        Condition::HasId(c) => {
            // A set in qdrant-edge: sorted, so the same filter is always the same request.
            let mut ids: Vec<&PointId> = c.has_id.iter().collect();
            ids.sort();
            ConditionOneOf::HasId(grpc::HasIdCondition { has_id: ids.into_iter().map(point_id).collect() })
        }
        Condition::HasVector(c) => {
            ConditionOneOf::HasVector(grpc::HasVectorCondition { has_vector: c.has_vector.to_string() })
        }
        Condition::Nested(c) => ConditionOneOf::Nested(grpc::NestedCondition {
            key: c.nested.key.to_string(),
            filter: Some(filter(&c.nested.filter)?),
        }),
        Condition::Filter(f) => ConditionOneOf::Filter(filter(f)?),
        Condition::CustomIdChecker(_) => return Err("unsupported condition".into()),
    };
    Ok(grpc::Condition { condition_one_of: Some(one_of) })
}

fn field_condition(c: &FieldCondition) -> Result<grpc::FieldCondition, String> {
    let (range, datetime_range) = match &c.range {
        None => (None, None),
        Some(RangeInterface::Float(r)) => {
            let range = grpc::Range {
                lt: r.lt.map(|v| v.0),
                gt: r.gt.map(|v| v.0),
                gte: r.gte.map(|v| v.0),
                lte: r.lte.map(|v| v.0),
            };
            (Some(range), None)
        }
        Some(RangeInterface::DateTime(r)) => {
            let range = grpc::DatetimeRange {
                lt: r.lt.map(timestamp),
                gt: r.gt.map(timestamp),
                gte: r.gte.map(timestamp),
                lte: r.lte.map(timestamp),
            };
            (None, Some(range))
        }
    };
    let geo_bounding_box = c.geo_bounding_box.as_ref().map(|b| grpc::GeoBoundingBox {
        top_left: Some(geo_point(&b.top_left)),
        bottom_right: Some(geo_point(&b.bottom_right)),
    });
    let geo_radius = c
        .geo_radius
        .as_ref()
        .map(|r| grpc::GeoRadius { center: Some(geo_point(&r.center)), radius: r.radius.0 as f32 });
    let line = |points: &[GeoPoint]| grpc::GeoLineString { points: points.iter().map(geo_point).collect() };
    let geo_polygon = c.geo_polygon.as_ref().map(|p| grpc::GeoPolygon {
        exterior: Some(line(&p.exterior.points)),
        interiors: p.interiors.iter().flatten().map(|l| line(&l.points)).collect(),
    });
    let values_count = c.values_count.as_ref().map(|v| grpc::ValuesCount {
        lt: v.lt.map(|n| n as u64),
        gt: v.gt.map(|n| n as u64),
        gte: v.gte.map(|n| n as u64),
        lte: v.lte.map(|n| n as u64),
    });
    let r#match = c.r#match.as_ref().map(|m| grpc::Match { match_value: Some(match_value(m)) });
    Ok(grpc::FieldCondition {
        key: c.key.to_string(),
        r#match,
        range,
        datetime_range,
        geo_bounding_box,
        geo_radius,
        geo_polygon,
        values_count,
        is_empty: c.is_empty,
        is_null: c.is_null,
    })
}

fn geo_point(p: &GeoPoint) -> grpc::GeoPoint {
    grpc::GeoPoint { lon: p.lon.0, lat: p.lat.0 }
}

/// Qdrant keeps datetimes to the microsecond.
fn timestamp(t: DateTimeWrapper) -> prost_types::Timestamp {
    let micros = t.timestamp();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn match_value(m: &Match) -> MatchValue {
    let strings = |set: &AnyVariants| match set {
        AnyVariants::Strings(s) => Ok(grpc::RepeatedStrings { strings: s.iter().cloned().collect() }),
        AnyVariants::Integers(i) => Err(grpc::RepeatedIntegers { integers: i.iter().copied().collect() }),
    };
    match m {
        Match::Value(v) => match &v.value {
            ValueVariants::String(s) => MatchValue::Keyword(s.clone()),
            ValueVariants::Integer(i) => MatchValue::Integer(*i),
            ValueVariants::Bool(b) => MatchValue::Boolean(*b),
        },
        Match::Text(t) => MatchValue::Text(t.text.clone()),
        Match::TextAny(t) => MatchValue::TextAny(t.text_any.clone()),
        Match::Phrase(p) => MatchValue::Phrase(p.phrase.clone()),
        Match::Any(a) => strings(&a.any).map_or_else(MatchValue::Integers, MatchValue::Keywords),
        Match::Except(e) => strings(&e.except).map_or_else(MatchValue::ExceptIntegers, MatchValue::ExceptKeywords),
    }
}

fn point_id(id: &PointId) -> grpc::PointId {
    match id {
        PointId::NumId(n) => (*n).into(),
        PointId::Uuid(u) => u.to_string().into(),
    }
}

#[cfg(test)]
#[path = "filter_grpc_tests.rs"]
mod grpc_tests;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = SearchFilter::parse(&json!({"must": [{"key": "city", "match": {"value": "Paris"}}]})).unwrap();
        let b = SearchFilter::parse(&json!({"must": [{"match": {"value": "Paris"}, "key": "city"}]})).unwrap();
        assert_eq!(a.canonical(), b.canonical());
    }

    #[test]
    fn invalid_filters_are_refused_with_a_reason() {
        for bad in [json!({"must": "x"}), json!({"unknown": []}), json!([1]), json!({"must": [{"key": 1}]})] {
            let error = SearchFilter::parse(&bad).unwrap_err();
            assert!(error.starts_with("invalid filter"), "{bad}: {error}");
        }
    }

    #[test]
    fn converts_the_common_conditions_to_grpc() {
        let f = SearchFilter::parse(&json!({
            "must": [
                {"key": "city", "match": {"value": "Paris"}},
                {"key": "age", "range": {"gte": 18, "lt": 65.5}},
                {"key": "tags", "match": {"any": ["rust", "go"]}},
                {"is_empty": {"key": "deleted"}},
                {"nested": {"key": "jobs", "filter": {"must": [{"key": "title", "match": {"text": "engineer"}}]}}}
            ],
            "must_not": [{"key": "level", "match": {"except": [1, 2]}}],
            "should": [{"has_id": [7]}]
        }))
        .unwrap();
        let g = f.to_grpc().unwrap();
        assert_eq!((g.must.len(), g.must_not.len(), g.should.len()), (5, 1, 1));
        let Some(ConditionOneOf::Field(city)) = &g.must[0].condition_one_of else { panic!("{g:?}") };
        assert_eq!(city.key, "city");
        assert_eq!(city.r#match.as_ref().unwrap().match_value, Some(MatchValue::Keyword("Paris".into())));
        let Some(ConditionOneOf::Field(age)) = &g.must[1].condition_one_of else { panic!() };
        assert_eq!(age.range, Some(grpc::Range { gte: Some(18.0), lt: Some(65.5), gt: None, lte: None }));
        let Some(ConditionOneOf::Field(tags)) = &g.must[2].condition_one_of else { panic!() };
        let Some(MatchValue::Keywords(k)) = &tags.r#match.as_ref().unwrap().match_value else { panic!() };
        assert_eq!(k.strings, vec!["rust", "go"]);
        let Some(ConditionOneOf::Nested(jobs)) = &g.must[4].condition_one_of else { panic!() };
        assert_eq!(jobs.key, "jobs");
        let Some(ConditionOneOf::Field(level)) = &g.must_not[0].condition_one_of else { panic!() };
        let Some(MatchValue::ExceptIntegers(i)) = &level.r#match.as_ref().unwrap().match_value else { panic!() };
        assert_eq!(i.integers, vec![1, 2]);
    }

    #[test]
    fn geo_and_datetime_conditions_convert_for_the_server() {
        let json = json!({"must": [
            {"key": "at", "geo_radius": {"center": {"lat": 48.85, "lon": 2.35}, "radius": 10000.0}},
            {"key": "at", "geo_bounding_box": {"top_left": {"lat": 49.0, "lon": 2.0}, "bottom_right": {"lat": 48.0, "lon": 3.0}}},
            {"key": "at", "geo_polygon": {"exterior": {"points": [
                {"lat": 48.0, "lon": 2.0}, {"lat": 49.0, "lon": 2.0}, {"lat": 49.0, "lon": 3.0}, {"lat": 48.0, "lon": 2.0}]}}},
            {"key": "joined", "range": {"gte": "2024-01-02T03:04:05.000006Z"}}
        ]});
        let grpc = SearchFilter::parse(&json).unwrap().to_grpc().unwrap();
        let fields: Vec<_> = grpc
            .must
            .iter()
            .map(|c| match &c.condition_one_of {
                Some(ConditionOneOf::Field(f)) => f.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        let radius = fields[0].geo_radius.unwrap();
        assert_eq!((radius.center.unwrap().lat, radius.radius), (48.85, 10000.0));
        assert_eq!(fields[1].geo_bounding_box.unwrap().bottom_right.unwrap().lon, 3.0);
        assert_eq!(fields[2].geo_polygon.as_ref().unwrap().exterior.as_ref().unwrap().points.len(), 4);
        let gte = fields[3].datetime_range.unwrap().gte.unwrap();
        assert_eq!((gte.seconds, gte.nanos), (1_704_164_645, 6_000));
        assert!(fields[3].range.is_none());
    }
}
