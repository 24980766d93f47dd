//! Integer request fields read the way JSON Schema reads them: `5.0` is the integer 5.
//!
//! JSON has one number type and JSON Schema's `integer` accepts any number without a fractional
//! part, so clients (JavaScript among them) may send `10.0`; serde alone refuses it for a
//! `usize`. Use with `#[serde(deserialize_with = "...")]`. Counts beyond [`MAX_COUNT`] (2^53) are
//! refused in either spelling; a field whose schema promises every count in range says so with
//! `maximum = 9_007_199_254_740_992_f64`.

use serde::de::{Deserializer, Error};
use serde::{Deserialize, de};

/// A non-negative integer, written as `5` or `5.0`.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    to_count(&number)
        .ok_or_else(|| D::Error::invalid_value(de::Unexpected::Other(&number.to_string()), &"a non-negative integer"))
}

/// [`count`] for an optional field (`null` is absent).
pub fn optional_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "count")] usize);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(n)| n))
}

/// The largest count: 2^53, up to which an f64 holds every integer, so that `n` and `n.0` are
/// read alike. The same bound in both spellings, so a schema's `maximum` can state it exactly.
pub const MAX_COUNT: u64 = 9_007_199_254_740_992;

fn to_count(number: &serde_json::Number) -> Option<usize> {
    if let Some(n) = number.as_u64() {
        return usize::try_from(n).ok().filter(|&n| n as u64 <= MAX_COUNT);
    }
    let f = number.as_f64()?;
    // Exactly integral and within the range where f64 holds every integer.
    (f.fract() == 0.0 && (0.0..=MAX_COUNT as f64).contains(&f)).then_some(f as usize)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Request {
        #[serde(deserialize_with = "super::count")]
        top_k: usize,
        #[serde(default, deserialize_with = "super::optional_count")]
        top_n: Option<usize>,
    }

    fn parse(value: serde_json::Value) -> Result<Request, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_integers_whatever_their_spelling() {
        assert_eq!(parse(json!({"top_k": 5})).unwrap(), Request { top_k: 5, top_n: None });
        assert_eq!(parse(json!({"top_k": 5.0, "top_n": 7.0})).unwrap(), Request { top_k: 5, top_n: Some(7) });
        assert_eq!(parse(json!({"top_k": 1, "top_n": null})).unwrap().top_n, None);
    }

    #[test]
    fn fractions_negatives_and_other_types_are_refused() {
        assert_eq!(parse(json!({"top_k": super::MAX_COUNT})).unwrap().top_k as u64, super::MAX_COUNT);
        let beyond = [json!(super::MAX_COUNT + 1), json!(u64::MAX), json!(2.6e20)];
        for bad in [json!(5.5), json!(-1), json!(-1.0), json!("5"), json!(1e300), json!(true)].into_iter().chain(beyond)
        {
            let error = parse(json!({"top_k": bad})).unwrap_err();
            assert!(error.contains("integer") || error.contains("invalid type"), "{bad}: {error}");
        }
        assert!(parse(json!({"top_k": 1, "top_n": 0.5})).is_err());
    }
}
