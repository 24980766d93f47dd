use serde_json::json;

use super::*;

fn nested(depth: usize, key: &str) -> String {
    format!("{}1{}", format!("{{\"{key}\":").repeat(depth), "}".repeat(depth))
}

#[test]
fn ordinary_bodies_parse_as_serde_json_parses_them() {
    let body = r#"{"documents": [{"id": "p1", "text": "x", "payload": {"n": 18446744073709551615, "f": -1.5e3, "z": null, "t": true}}], "e": []}"#;
    assert_eq!(parse(body.as_bytes()).unwrap(), serde_json::from_str::<Value>(body).unwrap());
    assert_eq!(parse(b" [1, \"a\", {}] ").unwrap(), json!([1, "a", {}]));
}

#[test]
fn a_key_twice_is_refused_at_any_depth_with_its_path() {
    let top = parse(br#"{"documents": [], "documents": [1]}"#).unwrap_err();
    assert_eq!(top, BodyProblem::DuplicateKey { path: ".".into(), key: "documents".into() });
    assert_eq!(top.to_string(), "`documents` is given twice in the body: give each key once");
    let deep = parse(br#"{"documents": [{"id": "a"}, {"id": "b", "payload": {"city": "Paris", "city": "Lyon"}}]}"#);
    assert_eq!(
        deep.unwrap_err(),
        BodyProblem::DuplicateKey { path: "documents[1].payload".into(), key: "city".into() }
    );
    let filter = parse(br#"{"filter": {"must": [{"key": "a", "match": {"value": 1, "value": 2}}]}}"#);
    assert_eq!(
        filter.unwrap_err(),
        BodyProblem::DuplicateKey { path: "filter.must[0].match".into(), key: "value".into() }
    );
    // The same key in two objects is not a duplicate.
    assert!(parse(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
}

#[test]
fn nesting_is_bounded_with_a_short_message() {
    assert!(parse(nested(MAX_DEPTH, "a").as_bytes()).is_ok(), "{MAX_DEPTH} levels are fine");
    let problem = parse(nested(MAX_DEPTH + 1, "a").as_bytes()).unwrap_err();
    assert!(matches!(&problem, BodyProblem::TooDeep { path } if path.starts_with("a.a.a")), "{problem:?}");
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(parse(arrays.as_bytes()).unwrap_err(), BodyProblem::TooDeep { .. }));
    let message = parse(nested(10_000, "zzz").as_bytes()).unwrap_err().to_string();
    assert!(message.chars().count() <= MAX_MESSAGE_CHARS, "{} chars: {message}", message.len());
    assert!(message.contains("deeper than 64 levels"), "{message}");
}

#[test]
fn not_json_is_a_syntax_problem() {
    for bad in [&b"{"[..], b"{\"a\": }", b"[1] [2]", b"", b"\xff"] {
        assert!(matches!(parse(bad), Err(BodyProblem::Syntax(_))), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn messages_stay_short_whatever_the_keys() {
    let key = "k".repeat(20_000);
    let body = format!(r#"{{"{key}": 1, "{key}": 2}}"#);
    let problem = parse(body.as_bytes()).unwrap_err();
    let message = problem.to_string();
    assert!(message.chars().count() <= MAX_MESSAGE_CHARS, "{} chars", message.chars().count());
    assert!(message.contains("kkk…kkk"), "shortened in the middle: {message}");
}

#[test]
fn shortening_keeps_both_ends() {
    assert_eq!(shorten_to("abcdef", 6), "abcdef");
    assert_eq!(shorten_to("abcdefghij", 5), "ab…ij");
    assert_eq!(shorten_to("ééééééé", 3), "é…é");
}

#[test]
fn json_content_types() {
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        is_json(&headers)
    };
    assert!(with("application/json") && with("Application/JSON; charset=utf-8") && with("application/vnd.x+json"));
    assert!(!with("text/plain") && !with("application/jsonx") && !with("json"));
    assert!(!is_json(&HeaderMap::new()));
}
