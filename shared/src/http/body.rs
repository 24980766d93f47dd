//! Reading a JSON request body, the same way in every service and for every field, free-form
//! ones (`filter`, `payload`) included: the body is parsed once into a JSON value that refuses a
//! key given twice in one object (anywhere: a proxy reading the first value and a service reading
//! the last would see two different requests) and nesting deeper than [`MAX_DEPTH`]; then that
//! value is read into the route's type. Every message names where the problem is, and is capped
//! at [`MAX_MESSAGE_CHARS`] whatever the body holds (a long key or a deep path is shortened in
//! the middle), so an answer never grows with the request.
//!
//! | what | status | code |
//! |---|---|---|
//! | not `application/json` (or `*+json`) | 415 | `unsupported_media_type` |
//! | over `--max-body-bytes` | 413 | `payload_too_large` |
//! | the body stopped arriving | 408 | `request_timeout` |
//! | not JSON | 400 | `invalid_json` |
//! | a key twice in one object | 422 | `duplicate_key` |
//! | nested deeper than 64 | 422 | `too_deep` |
//! | JSON of the wrong shape | 422 | `invalid_request` |

use std::cell::RefCell;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::error_response;

/// Arrays and objects inside one another, at most; the body itself is level 1. Qdrant filters
/// nest a few levels, payloads a few more: 64 leaves room and stays far below serde_json's own
/// limit (128), so this check is the one that answers.
pub const MAX_DEPTH: usize = 64;
/// The longest error message a bad body gets.
pub const MAX_MESSAGE_CHARS: usize = 300;
/// The longest field path or key quoted in a message.
const MAX_QUOTED_CHARS: usize = 120;

/// `axum::Json`, except that bad bodies come back as `ErrorBody` JSON with the statuses above.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            let message = "expected a request with `Content-Type: application/json`";
            return Err(error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(unreadable)?;
        let value = parse(&bytes).map_err(|problem| problem.response())?;
        // Any error from here on is the client's wrong shape: 422, naming the field.
        serde_path_to_error::deserialize(value).map(Json).map_err(|e| {
            let path = e.path().to_string();
            let message =
                if path == "." { e.inner().to_string() } else { format!("`{}`: {}", shorten(&path), e.inner()) };
            error_response(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", cap(&message))
        })
    }
}

/// `application/json`, or a `+json` type such as `application/merge-patch+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, subtype)) => kind == "application" && (subtype == "json" || subtype.ends_with("+json")),
        None => false,
    }
}

/// A body that could not be read whole: too large (413), stalled (408), or broken (400).
fn unreadable(rejection: axum::extract::rejection::BytesRejection) -> Response {
    if timed_out(&rejection) {
        let mut response = error_response(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stopped arriving (--body-timeout-secs)",
        );
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let mut response = error_response(status, "payload_too_large", cap(&rejection.body_text()));
        // The rest of the body is left unread, so this connection cannot carry another request:
        // say so, or a client that pools connections sends its next request into a closing socket.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    error_response(status, "invalid_body", cap(&rejection.body_text()))
}

/// Whether reading the body failed because tower-http's body timeout fired.
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(rejection);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// What is wrong with a body that is not a JSON value this service reads.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyProblem {
    /// Not JSON at all (serde_json's message: what and where).
    Syntax(String),
    /// `key` appears twice in the object at `path`.
    DuplicateKey { path: String, key: String },
    /// An array or object at `path` is nested deeper than [`MAX_DEPTH`].
    TooDeep { path: String },
}

impl BodyProblem {
    pub fn response(&self) -> Response {
        let (status, code) = match self {
            Self::Syntax(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::DuplicateKey { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_key"),
            Self::TooDeep { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_deep"),
        };
        error_response(status, code, cap(&self.to_string()))
    }
}

impl fmt::Display for BodyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(why) => write!(f, "the body is not valid JSON: {why}"),
            Self::DuplicateKey { path, key } => {
                let place = if path == "." { "the body".to_string() } else { format!("`{}`", shorten(path)) };
                write!(f, "`{}` is given twice in {place}: give each key once", shorten(key))
            }
            Self::TooDeep { path } => {
                write!(f, "the body nests arrays and objects deeper than {MAX_DEPTH} levels, at `{}`", shorten(path))
            }
        }
    }
}

/// Parses a body into a JSON value, refusing duplicate keys and nesting deeper than [`MAX_DEPTH`].
pub fn parse(bytes: &[u8]) -> Result<Value, BodyProblem> {
    let walk = Walk::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Node { walk: &walk, depth: 0 }.deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    parsed.map_err(|e| walk.problem.take().unwrap_or_else(|| BodyProblem::Syntax(e.to_string())))
}

/// Where the parse is (for messages) and the problem it met, if it stopped on one of its own.
#[derive(Default)]
struct Walk {
    path: RefCell<Vec<Segment>>,
    problem: RefCell<Option<BodyProblem>>,
}

enum Segment {
    Key(String),
    Index(usize),
}

impl Walk {
    /// The path as `serde_path_to_error` prints it: `documents[2].payload.city`, `.` for the root.
    fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.path.borrow().iter() {
            match segment {
                Segment::Key(key) if out.is_empty() => out.push_str(key),
                Segment::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() { ".".into() } else { out }
    }

    fn fail<E: de::Error>(&self, problem: BodyProblem) -> E {
        let message = problem.to_string();
        *self.problem.borrow_mut() = Some(problem);
        E::custom(message)
    }

    /// Runs `read` (which parses the value under `segment`) with `segment` on the path.
    fn within<R>(&self, segment: Segment, read: impl FnOnce() -> R) -> R {
        self.path.borrow_mut().push(segment);
        let result = read();
        self.path.borrow_mut().pop();
        result
    }
}

/// One JSON value at `depth` (the number of arrays and objects around it).
#[derive(Clone, Copy)]
struct Node<'a> {
    walk: &'a Walk,
    depth: usize,
}

impl Node<'_> {
    fn enter<E: de::Error>(self) -> Result<usize, E> {
        if self.depth >= MAX_DEPTH {
            return Err(self.walk.fail(BodyProblem::TooDeep { path: self.walk.path() }));
        }
        Ok(self.depth + 1)
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let node = Node { walk: self.walk, depth };
        let mut items = Vec::new();
        while let Some(item) = self.walk.within(Segment::Index(items.len()), || seq.next_element_seed(node))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let node = Node { walk: self.walk, depth };
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(self.walk.fail(BodyProblem::DuplicateKey { path: self.walk.path(), key }));
            }
            let value = self.walk.within(Segment::Key(key.clone()), || map.next_value_seed(node))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// `text` if short enough, else its start and end around an ellipsis.
fn shorten(text: &str) -> String {
    shorten_to(text, MAX_QUOTED_CHARS)
}

/// A whole message within [`MAX_MESSAGE_CHARS`].
fn cap(message: &str) -> String {
    shorten_to(message, MAX_MESSAGE_CHARS)
}

fn shorten_to(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        return text.to_string();
    }
    let keep = (limit - 1) / 2;
    let head: String = text.chars().take(keep).collect();
    let tail: String = text.chars().skip(count - keep).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
