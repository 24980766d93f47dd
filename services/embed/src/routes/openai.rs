//! `POST /v1/embeddings`, compatible with OpenAI's embeddings API (float and base64 encodings).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::http::Json;
use shared::http::openapi::{BadBody, EngineBusy, Unauthorized};
use shared::tokenize::InputType;
use utoipa::ToSchema;

use super::embed::check_batch_size;
use crate::AppState;
use crate::error::ApiError;

/// One text, or a list of texts.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Input {
    One(String),
    Many(Vec<String>),
}

/// `float` (the default): lists of numbers; `base64`: little-endian f32 bytes in base64.
#[derive(Deserialize, Clone, Copy, PartialEq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EncodingFormat {
    Float,
    Base64,
}

/// OpenAI's embeddings request.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"input": ["query: rust engineer"], "model": "multilingual-e5-large"}))]
pub(crate) struct EmbeddingsRequest {
    /// One text, or 1 to --max-client-batch texts (256 by default).
    #[schema(schema_with = input_schema)]
    input: Input,
    /// Accepted for compatibility; the service has one model and reports its name.
    #[serde(default)]
    #[allow(dead_code)]
    model: Option<String>,
    encoding_format: Option<EncodingFormat>,
    /// Must equal the model's dimension if given (the model cannot shorten its vectors).
    #[serde(default, deserialize_with = "shared::http::integer::optional_count")]
    dimensions: Option<usize>,
    /// An extension: E5's input type (defaults to --default-input-type).
    input_type: Option<InputType>,
}

/// Floats, or their base64 encoding.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Datum {
    /// Always `embedding`.
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EmbeddingsResponse {
    /// Always `list`.
    object: &'static str,
    data: Vec<Datum>,
    model: String,
    usage: Usage,
}

/// Embeds texts, compatible with OpenAI's embeddings API (and its client libraries).
#[utoipa::path(post, path = "/v1/embeddings", tag = "embeddings", request_body = EmbeddingsRequest,
    responses((status = 200, description = "One datum per input text, in order", body = EmbeddingsResponse), BadBody, EngineBusy, Unauthorized))]
#[tracing::instrument(skip_all, fields(route = "/v1/embeddings"))]
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Json(request): Json<EmbeddingsRequest>,
) -> Result<axum::Json<EmbeddingsResponse>, ApiError> {
    let texts = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    check_batch_size(texts.len(), state.config.max_client_batch)?;
    if let (Some(asked), Some(dim)) = (request.dimensions, state.embedder.dimension())
        && asked != dim
    {
        return Err(ApiError::InvalidRequest(format!("this model's embeddings have {dim} dimensions, not {asked}")));
    }
    let input_type = request.input_type.unwrap_or(state.config.default_input_type);
    let out = state.embedder.embed(texts, input_type, shared::Priority::Interactive).await?;
    let base64 = request.encoding_format == Some(EncodingFormat::Base64);
    let data = out
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Datum {
            object: "embedding",
            index,
            embedding: if base64 { Vector::Base64(encode_base64_f32(&v)) } else { Vector::Float(v) },
        })
        .collect();
    Ok(axum::Json(EmbeddingsResponse {
        object: "list",
        data,
        model: state.embedder.name().to_string(),
        usage: Usage { prompt_tokens: out.tokens, total_tokens: out.tokens },
    }))
}

/// `input`'s schema: a string, or a non-empty list of strings.
fn input_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String);
    OneOfBuilder::new()
        .item(text())
        .item(ArrayBuilder::new().items(text()).min_items(Some(1)))
        .description(Some("One text, or 1 to --max-client-batch texts (256 by default)."))
        .build()
        .into()
}

/// Little-endian f32 bytes in standard base64, as OpenAI's `encoding_format = "base64"` returns.
pub(crate) fn encode_base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_base64_f32;

    #[test]
    fn base64_matches_the_standard_encoding() {
        // 1.0f32 = 00 00 80 3f (little endian) -> "AACAPw=="; two floats -> 8 bytes -> "AACAPwAAAEA="
        assert_eq!(encode_base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(encode_base64_f32(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert_eq!(encode_base64_f32(&[]), "");
    }
}
