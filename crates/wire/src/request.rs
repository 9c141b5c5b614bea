//! What a gateway request may ask an upstream for, and its worst case, decided before anything
//! is forwarded (docs/gateway-requests.md).
//!
//! - **Fields.** Each endpoint forwards only the fields OpenAI's API defines for it (the lists
//!   below); anything else is dropped. Request-level routing or billing switches an upstream may
//!   honour for the gateway's own credential (LiteLLM's `fallbacks`, `api_base`, `metadata`;
//!   OpenAI's `service_tier`, `store`, `prediction`, audio output) never reach it.
//! - **Output limit.** What the upstream may produce is bounded before the request goes out:
//!   the client's `max_completion_tokens`/`max_tokens` (at least 1, at most the model's context
//!   window) is written back into the body under the name the client used (`max_tokens` when it
//!   sent none and the model has no context window: then [`DEFAULT_MAX_OUTPUT`]).
//! - **Worst case.** Prompt tokens are at most the body's bytes (a token is at least one byte of
//!   JSON; a media part by reference counts [`MEDIA_ALLOWANCE`]) and at most the context window;
//!   output is that limit times the answers the upstream generates (`n`, or `best_of` for
//!   completions). With a context window, no request can use more than `answers × window`. All
//!   sums saturate: no amount is ever negative or wraps.

use crate::{Amount, cost_nano};
use serde_json::{Map, Value};

/// A request the gateway refuses (400); the message is for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError(pub String);

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequestError {}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError(message.into())
}

/// The OpenAI endpoints the gateway relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The endpoint's name in usage rows and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// The path under the upstream's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// The fields forwarded to the upstream (OpenAI's API reference for the endpoint, minus
    /// what changes the price or the route: `service_tier`, `store`, `metadata`, `prediction`,
    /// `modalities`/`audio`, `web_search_options`).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::Chat => &[
                "model",
                "messages",
                "frequency_penalty",
                "presence_penalty",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "max_tokens",
                "max_completion_tokens",
                "n",
                "response_format",
                "seed",
                "stop",
                "stream",
                "stream_options",
                "temperature",
                "top_p",
                "tools",
                "tool_choice",
                "parallel_tool_calls",
                "functions",
                "function_call",
                "reasoning_effort",
                "user",
            ],
            Endpoint::Completions => &[
                "model",
                "prompt",
                "suffix",
                "best_of",
                "echo",
                "frequency_penalty",
                "presence_penalty",
                "logit_bias",
                "logprobs",
                "max_tokens",
                "n",
                "seed",
                "stop",
                "stream",
                "stream_options",
                "temperature",
                "top_p",
                "user",
            ],
            Endpoint::Embeddings => &["model", "input", "encoding_format", "dimensions", "user"],
        }
    }
}

/// Output tokens allowed when a request names no maximum and its model has no context window.
pub const DEFAULT_MAX_OUTPUT: i64 = 4096;
/// Prompt tokens counted for each image, audio or file part (its bytes may be a mere URL).
pub const MEDIA_ALLOWANCE: i64 = 4096;
/// The most answers one request may ask for (`n`, as OpenAI allows).
pub const MAX_ANSWERS: i64 = 128;
/// The most candidates for `best_of` (completions; as OpenAI allows).
pub const MAX_BEST_OF: i64 = 20;
/// Requested output beyond this is cut to it when the model has no context window (no model
/// writes a million tokens in one answer; it keeps every sum far from overflowing).
pub const MAX_OUTPUT_CEILING: i64 = 1 << 20;

/// What the gateway knows of a model when it plans a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelBounds {
    /// The context window in tokens, when the admin set one.
    pub context_window: Option<i64>,
    /// Micro-dollars per million input / output tokens.
    pub price_in_micro: i64,
    pub price_out_micro: i64,
}

/// A request read and checked: the client's model alias and the fields that may go on.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub alias: String,
    /// Only the endpoint's fields (`model` still the client's alias).
    pub fields: Map<String, Value>,
    /// Names of the fields dropped (for the debug log; never their values).
    pub dropped: Vec<String>,
    pub stream: bool,
    /// The body's length in bytes.
    pub bytes: usize,
    /// Image, audio and file parts in the messages.
    pub media: i64,
    /// Answers the upstream generates (`n`, or `best_of` when larger).
    pub answers: i64,
    /// The client's output limit, if any, and the field it came in.
    pub max_output: Option<(i64, OutputField)>,
}

/// Which field carried the client's output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputField {
    MaxTokens,
    MaxCompletionTokens,
}

/// The body for one upstream and what it may cost at most.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub body: Map<String, Value>,
    pub worst: Amount,
    /// The output limit written into the body (`None`: the context window bounds it).
    pub max_output: Option<i64>,
}

/// Reads a request body: a JSON object with a model alias and well-formed accounting fields.
pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Parsed, RequestError> {
    let doc: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("The request body is not a JSON object: {e}.")))?;
    let alias = match doc.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(bad("`model` must be a model name (a string)."));
        }
        None => {
            return Err(bad("You must provide a model parameter (`model`)."));
        }
    };
    let allowed = endpoint.fields();
    let mut fields = Map::new();
    let mut dropped = Vec::new();
    for (name, value) in doc {
        if allowed.contains(&name.as_str()) {
            fields.insert(name, value);
        } else {
            dropped.push(name);
        }
    }
    let stream = match fields.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b && endpoint != Endpoint::Embeddings,
        Some(_) => return Err(bad("`stream` must be true or false.")),
    };
    let n = whole(&fields, "n", 1, MAX_ANSWERS)?.unwrap_or(1);
    let best_of = match endpoint {
        Endpoint::Completions => whole(&fields, "best_of", 1, MAX_BEST_OF)?,
        _ => None,
    };
    if best_of.is_some_and(|b| b < n) {
        return Err(bad(
            "`best_of` must be at least `n` (it is how many answers `n` are chosen from).",
        ));
    }
    let answers = match endpoint {
        Endpoint::Embeddings => 0,
        _ => best_of.unwrap_or(n).max(n),
    };
    let max_output = match endpoint {
        Endpoint::Embeddings => None,
        _ => {
            let completion = whole(&fields, "max_completion_tokens", 1, i64::MAX)?;
            let tokens = whole(&fields, "max_tokens", 1, i64::MAX)?;
            // OpenAI's newer name wins when both are given; both are then written alike.
            completion
                .map(|m| (m, OutputField::MaxCompletionTokens))
                .or(tokens.map(|m| (m, OutputField::MaxTokens)))
        }
    };
    let media = match endpoint {
        Endpoint::Chat => media_parts(fields.get("messages")),
        _ => 0,
    };
    Ok(Parsed {
        alias,
        fields,
        dropped,
        stream,
        bytes: bytes.len(),
        media,
        answers,
        max_output,
    })
}

/// An optional whole-number field within `min..=max` (`null` is absent; larger numbers than
/// an i64 holds count as the largest).
fn whole(
    fields: &Map<String, Value>,
    name: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, RequestError> {
    let value = match fields.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) if n.is_u64() => {
            n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX))
        }
        Some(Value::Number(n)) => n.as_i64(),
        Some(_) => None,
    };
    match value {
        Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ if max == i64::MAX => Err(bad(format!(
            "`{name}` must be a whole number of at least {min}."
        ))),
        _ => Err(bad(format!(
            "`{name}` must be a whole number from {min} to {max}."
        ))),
    }
}

/// How many message parts are images, audio or files (their tokens don't follow their bytes).
fn media_parts(messages: Option<&Value>) -> i64 {
    let Some(Value::Array(messages)) = messages else {
        return 0;
    };
    let mut count: i64 = 0;
    for message in messages {
        if let Some(Value::Array(parts)) = message.get("content") {
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if kind != "text" && kind != "refusal" {
                    count = count.saturating_add(1);
                }
            }
        }
    }
    count
}

/// The body to send to the model behind `bounds` (its upstream name in `model`) and the most
/// the request may use there.
pub fn plan(parsed: &Parsed, upstream_model: &str, bounds: ModelBounds) -> Planned {
    let mut body = parsed.fields.clone();
    body.insert("model".into(), Value::String(upstream_model.to_owned()));
    body.remove("stream_options");
    for field in [OutputField::MaxTokens, OutputField::MaxCompletionTokens] {
        // `null` means "no limit": the limit written below replaces it.
        if body.get(field.name()) == Some(&Value::Null) {
            body.remove(field.name());
        }
    }
    if parsed.stream {
        // Ask for the usage chunk at the end of the stream (and nothing else of the client's
        // stream options).
        body.insert(
            "stream_options".into(),
            serde_json::json!({ "include_usage": true }),
        );
    }
    let window = bounds.context_window.filter(|w| *w > 0);
    let bytes = i64::try_from(parsed.bytes).unwrap_or(i64::MAX);
    let mut prompt = bytes.saturating_add(parsed.media.saturating_mul(MEDIA_ALLOWANCE));
    if let Some(w) = window {
        prompt = prompt.min(w);
    }
    let answers = parsed.answers;
    let max_output = if answers == 0 {
        None
    } else {
        match (parsed.max_output, window) {
            (Some((m, field)), _) => {
                let m = m.min(window.unwrap_or(MAX_OUTPUT_CEILING));
                body.insert(field.name().into(), Value::from(m));
                if field == OutputField::MaxCompletionTokens && body.contains_key("max_tokens") {
                    body.insert("max_tokens".into(), Value::from(m));
                }
                Some(m)
            }
            // The upstream's own default stops at the context window.
            (None, Some(_)) => None,
            (None, None) => {
                body.insert("max_tokens".into(), Value::from(DEFAULT_MAX_OUTPUT));
                Some(DEFAULT_MAX_OUTPUT)
            }
        }
    };
    let output_each = max_output.or(window).unwrap_or(0);
    let output = answers.saturating_mul(output_each);
    let mut tokens = prompt.saturating_add(output);
    if let (Some(w), true) = (window, answers > 0) {
        // Each answer shares the window with the prompt: prompt + n × (window − prompt).
        tokens = tokens.min(answers.saturating_mul(w));
    }
    let worst = Amount {
        tokens,
        cost_nano: cost_nano(
            prompt,
            output,
            bounds.price_in_micro,
            bounds.price_out_micro,
        ),
    };
    Planned {
        body,
        worst,
        max_output,
    }
}

impl OutputField {
    fn name(self) -> &'static str {
        match self {
            OutputField::MaxTokens => "max_tokens",
            OutputField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// Prompt tokens assumed when the upstream reports no usage (about four bytes a token).
pub fn prompt_estimate(bytes: usize) -> i64 {
    i64::try_from(bytes / 4 + 1).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
