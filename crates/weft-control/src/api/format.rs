//! Content negotiation: request bodies in JSON or YAML (by `Content-Type`, else 415),
//! responses in JSON or YAML (by `Accept`, else 406), request bodies read whole before
//! anything answers ([`read_first`]) and capped at [`MAX_BODY_BYTES`] (else 413).

use std::cmp::{Ordering, Reverse};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use super::error::Error;
use super::MAX_BODY_BYTES;

/// The serialisation of a request or response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Yaml,
}

const YAML_TYPES: [&str; 3] = ["application/yaml", "application/x-yaml", "text/yaml"];

impl Format {
    /// The request body's format. A missing `Content-Type` is read as JSON.
    pub(super) fn of_request(headers: &HeaderMap) -> Result<Format, Error> {
        let Some(value) = headers.get(CONTENT_TYPE) else {
            return Ok(Format::Json);
        };
        let text = value.to_str().unwrap_or_default();
        let essence = text
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" || essence.ends_with("+json") {
            Ok(Format::Json)
        } else if YAML_TYPES.contains(&essence.as_str()) {
            Ok(Format::Yaml)
        } else {
            Err(Error::unsupported_media_type(text))
        }
    }

    /// The response format the client asked for: the offered type (JSON, then YAML)
    /// the `Accept` header ranks highest (by `q`, then by how specifically it names it,
    /// then by its position), JSON without an `Accept` header. `406` when `Accept`
    /// names neither, not even through `*/*` or `application/*`.
    pub(super) fn of_response(headers: &HeaderMap) -> Result<Format, Error> {
        const OFFERED: [(Format, &[&str]); 2] = [
            (Format::Json, &["application/json"]),
            (Format::Yaml, &YAML_TYPES),
        ];
        match negotiate(headers, &OFFERED.map(|(_, names)| names)) {
            Ok(index) => Ok(OFFERED[index].0),
            Err(accept) => Err(Error::not_acceptable(
                &accept,
                &["application/json", "application/yaml"],
            )),
        }
    }
}

/// Checks that `Accept` allows a watch's `application/x-ndjson` (a JSON client's
/// `application/json` does too: each line is JSON).
pub(super) fn accepts_ndjson(headers: &HeaderMap) -> Result<(), Error> {
    const NDJSON: &[&str] = &["application/x-ndjson", "application/json"];
    negotiate(headers, &[NDJSON])
        .map(|_| ())
        .map_err(|accept| Error::not_acceptable(&accept, &["application/x-ndjson"]))
}

/// The index of the offered type (each given by its names, the first canonical) that
/// `Accept` prefers, or `Err(accept)` when it accepts none. No (or an empty) `Accept`
/// accepts anything: the first offer wins.
fn negotiate(headers: &HeaderMap, offered: &[&[&str]]) -> Result<usize, String> {
    let accept: Vec<&str> = headers
        .get_all(ACCEPT)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let accept = accept.join(", ");
    if accept.trim().is_empty() {
        return Ok(0);
    }
    let ranges: Vec<(String, f32)> = accept.split(',').filter_map(media_range).collect();
    // Per offer: the rank of the most specific range that names it.
    let mut best: Option<(usize, Rank)> = None;
    for (index, names) in offered.iter().enumerate() {
        let mut rank: Option<Rank> = None;
        for (position, (range, q)) in ranges.iter().enumerate() {
            let Some(specificity) = names.iter().filter_map(|n| specificity(range, n)).max() else {
                continue;
            };
            let candidate = (*q, specificity, Reverse(position));
            if rank.is_none_or(|r| specificity > r.1) {
                rank = Some(candidate);
            }
        }
        if let Some(rank) = rank.filter(|r| r.0 > 0.0) {
            if best.is_none_or(|(_, b)| rank.partial_cmp(&b) == Some(Ordering::Greater)) {
                best = Some((index, rank));
            }
        }
    }
    best.map(|(index, _)| index).ok_or(accept)
}

/// How much `Accept` wants an offered type: the `q` of the most specific range naming
/// it, that range's specificity, and its position (earlier wins).
type Rank = (f32, u8, Reverse<usize>);

/// One `Accept` element as (lower-case `type/subtype`, q); `None` if malformed.
fn media_range(element: &str) -> Option<(String, f32)> {
    let mut parts = element.split(';');
    let range = parts.next()?.trim().to_ascii_lowercase();
    let (kind, sub) = range.split_once('/')?;
    if kind.is_empty() || sub.is_empty() || (kind == "*" && sub != "*") {
        return None;
    }
    let mut q = 1.0;
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))?;
            }
        }
    }
    Some((range, q))
}

/// How specifically `range` names `media` (3 exact, 2 `type/*`, 1 `*/*`), if it does.
fn specificity(range: &str, media: &str) -> Option<u8> {
    if range == media {
        return Some(3);
    }
    let (kind, sub) = range.split_once('/')?;
    match (kind, sub) {
        ("*", "*") => Some(1),
        (kind, "*") if media.split_once('/').is_some_and(|(k, _)| k == kind) => Some(2),
        _ => None,
    }
}

/// Middleware, outermost on the router: reads the whole request body (at most
/// [`MAX_BODY_BYTES`]) before anything answers. A request refused before its handler
/// reads the body (401, 404, 405, or 400 for a path parameter) would otherwise leave it
/// unread, and hyper closes such a connection: a client still sending the body sees a
/// reset instead of the answer.
pub(super) async fn read_first(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match read_body(body).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

/// Reads the whole request body, at most [`MAX_BODY_BYTES`].
pub(super) async fn read_body(body: Body) -> Result<bytes::Bytes, Error> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(Error::bad_request(format!("reading the request body: {e}"))),
    }
}

/// Reads the body as UTF-8 text.
pub(super) async fn read_text(body: Body) -> Result<String, Error> {
    let bytes = read_body(body).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|e| Error::bad_request(format!("request body is not UTF-8: {e}")))
}

/// Decodes one document in `format` into a JSON value.
pub(super) fn decode(format: Format, text: &str) -> Result<serde_json::Value, Error> {
    match format {
        Format::Json => {
            let value = serde_json::from_str(text).map_err(|e| {
                Error::invalid(format!("request body is not valid JSON: {e}"), vec![])
            })?;
            // serde_json keeps the last of repeated keys; `apply` refuses them (its YAML
            // parser does), and so does every other write.
            let mut json = serde_json::Deserializer::from_str(text);
            serde::de::DeserializeSeed::deserialize(UniqueKeys(String::new()), &mut json)
                .map_err(|e| Error::invalid(format!("request body {e}"), vec![]))?;
            Ok(value)
        }
        Format::Yaml => serde_saphyr::from_str(text).map_err(|e| {
            Error::invalid(
                format!("request body is {}", weft_policy::yaml_error(text, &e)),
                vec![],
            )
        }),
    }
}

/// Walks a JSON value and fails on the first mapping that repeats a key, naming its
/// path (`metadata.name`); holds the path of the value it reads.
struct UniqueKeys(String);

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(UniqueKeys(format!("{}[{index}]", self.0)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.0.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.0)
            };
            if !seen.insert(key) {
                return Err(serde::de::Error::custom(format!(
                    "repeats the key `{path}`; give each key once"
                )));
            }
            map.next_value_seed(UniqueKeys(path))?;
        }
        Ok(())
    }
}

/// A successful response in the negotiated format.
pub(super) struct Reply {
    status: StatusCode,
    format: Format,
    body: Result<Vec<u8>, Error>,
}

impl Reply {
    /// `200` with `value`.
    pub(super) fn ok(format: Format, value: &impl Serialize) -> Reply {
        Reply::with_status(StatusCode::OK, format, value)
    }

    /// `status` with `value`.
    pub(super) fn with_status(status: StatusCode, format: Format, value: &impl Serialize) -> Reply {
        let body = match format {
            Format::Json => serde_json::to_vec(value).map_err(|e| Error::internal(&e)),
            Format::Yaml => serde_saphyr::to_string(value)
                .map(String::into_bytes)
                .map_err(|e| Error::internal(&e)),
        };
        Reply {
            status,
            format,
            body,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let content_type = match self.format {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        };
        match self.body {
            Ok(body) => (
                self.status,
                [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
                body,
            )
                .into_response(),
            Err(e) => e.into_response(),
        }
    }
}
