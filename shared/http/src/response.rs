use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Response};

/// A request's body as bytes, whether API Gateway passed it as text or
/// base64.
pub fn body_bytes(req: &lambda_http::Request) -> &[u8] {
    match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Whether a body that parsed as JSON is an object. serde also fills a
/// struct from an array, by position, so `[[...]]` would pass for
/// `{"readings": [...]}`; every body of this API is an object.
pub fn is_json_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// The segments of `path` below `prefix` (`/v1/plugins/f2c/versions`
/// under `/v1/plugins` is `["f2c", "versions"]`); a path outside it is a 404.
pub fn segments_under<'a>(path: &'a str, prefix: &str) -> Result<Vec<&'a str>, crate::ApiError> {
    let rest = path
        .strip_prefix(prefix)
        .ok_or_else(|| crate::ApiError::not_found(format!("no route {path}")))?;
    Ok(rest.split('/').filter(|p| !p.is_empty()).collect())
}

/// The query string, the first value of each key.
pub fn query_params(req: &lambda_http::Request) -> std::collections::HashMap<String, String> {
    use lambda_http::RequestExt;
    req.query_string_parameters_ref()
        .map(|q| {
            q.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    // Serializing our own response types cannot fail; the fallback keeps it total.
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The API Gateway HTTP API (payload 2.0) shape of a response, for
/// functions that take more than one kind of event and so cannot use
/// `lambda_http::run`.
pub fn to_apigw_response(resp: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    match body {
        Body::Empty => {}
        b @ Body::Text(_) => out.body = Some(b),
        b @ Body::Binary(_) => {
            out.is_base64_encoded = true;
            out.body = Some(b);
        }
        _ => {}
    }
    out
}
