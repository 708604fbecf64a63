//! `/api` and `/apis`: the legacy document or, when `Accept` asks for it,
//! the aggregated one ([`crate::apiserver::discovery::negotiate`]). Both
//! vary on `Accept`; the aggregated one carries an `ETag` of its content
//! and answers a matching `If-None-Match` with 304 and no body.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::apiserver::discovery::aggregated::{self, Root};
use crate::apiserver::discovery::negotiate::{self, Form};
use crate::apiserver::discovery::{core_versions, group_list_in};
use crate::apiserver::response::json_response;
use crate::apiserver::ApiState;

/// Serves `root` in the form `headers` ask for.
pub fn serve(state: &ApiState, root: Root, headers: &HeaderMap) -> Response {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let mut resp = match negotiate::negotiate(text(header::ACCEPT)) {
        Form::Legacy => {
            let doc = match root {
                Root::Core => core_versions(&state.server_address),
                Root::Groups => group_list_in(&state.crds.rows()),
            };
            json_response(StatusCode::OK, &doc, &[])
        }
        Form::Aggregated(version) => {
            let body = aggregated::document(&state.crds.rows(), root, version).to_string();
            let etag = aggregated::etag(body.as_bytes());
            let mut resp = if negotiate::if_none_match(text(header::IF_NONE_MATCH), &etag) {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (StatusCode::OK, body).into_response()
            };
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(version.content_type()));
            if let Ok(v) = HeaderValue::from_str(&etag) {
                h.insert(header::ETAG, v);
            }
            resp
        }
    };
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}
