//! Form-encoded requests to the authorisation server's endpoints: the
//! code exchange, the refresh and the revocation share one shape.

use super::config::{ClientType, ConnectionConfig};
use crate::types::{Header, Method, Request};

/// Timeout of a token-endpoint or revocation request.
pub const TOKEN_TIMEOUT_MS: u32 = 30_000;

/// A `POST` of `params` as `application/x-www-form-urlencoded` to `url`.
///
/// Client authentication (RFC 6749 §2.3.1): a confidential client's
/// request asks the host to apply the secret, which never enters the
/// guest; a public client identifies itself with `client_id` in the body
/// (RFC 6749 §3.2.1).
pub fn form_post(config: &ConnectionConfig, url: String, params: &[(&str, &str)]) -> Request {
    let mut form = ::url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        form.append_pair(name, value);
    }
    let client_auth = match config.client_type {
        ClientType::Confidential => Some(config.client_id.clone()),
        ClientType::Public => {
            form.append_pair("client_id", &config.client_id);
            None
        }
    };
    Request {
        method: Method::Post,
        url,
        headers: vec![
            Header::new("Content-Type", "application/x-www-form-urlencoded"),
            Header::new("Accept", "application/json"),
        ],
        body: form.finish().into_bytes(),
        timeout_ms: TOKEN_TIMEOUT_MS,
        client_auth,
    }
}
