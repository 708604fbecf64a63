//! The HTTP layer: connections, the one request pipeline and a handler per verb.
//!
//! Every request takes the same path through [`handle`]:
//! 0. **authentication**, before anything else (unknown paths included): the
//!    TLS layer verified the client certificate (`conn`);
//!    [`crate::auth::authn`] decides the user (certificate, bearer token,
//!    or anonymous for health and version only, else 401), which goes into
//!    the request's extensions as a `UserInfo`;
//! 1. **decide**: the path and method become a [`call::Call`] (pure,
//!    table-tested in `path` and `call`); query options are parsed once
//!    into typed values ([`crate::apiserver::options`]);
//! 2. **limits**: the in-flight limit of the call's class (429; writes also
//!    while the store's write queue is full), then the body is read within
//!    its size limit (413) and time limit (408);
//! 3. **authorization**, in front of every handler ([`authz`]): the user
//!    (authentication's `UserInfo` extension, step 0), impersonation, then
//!    the authorizer chain of [`crate::auth`] on the call's attributes (403
//!    if denied), and NodeRestriction on a node's creates;
//! 4. the **verb's handler** (`read`, `write`, `delete`, `sub`). Admission
//!    (defaults, validation, metadata rules) is in `crud`, which every write
//!    goes through.
//!
//! Errors become `Status` objects in one place (`status`). Connection limits
//! (count, header timeout, HTTP/2 streams, stalled writes) are in [`conn`].

mod apply;
pub mod authz;
pub(crate) mod body;
pub mod call;
mod conn;
mod delete;
mod escalation;
pub mod limits;
pub mod path;
mod read;
mod review;
mod roots;
mod sub;
mod write;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::discovery::aggregated::Root;
use super::options::{table_mode, Query};
use super::response::json_response;
use super::status::{ApiError, Result};
use super::table::IncludeObject;
use super::{discovery, metrics_api, openapi, stream_proxy, ApiState};
use crate::auth::authn::{Authenticator, Identified, PeerCert};
use crate::auth::sa_token;
use crate::auth::user::UserInfo;
use crate::metrics::RequestLabels;
use call::{Call, Verb};
use limits::InFlight;
use path::{parse_path_with, Route, Target};

/// What the connection tasks share: the API state, the in-flight limiter,
/// TLS and the authenticators.
pub(crate) struct Server {
    state: Arc<ApiState>,
    inflight: InFlight,
    tls: tokio_rustls::TlsAcceptor,
    authn: Authenticator,
}

/// How the apiserver is reached and who may call it.
#[derive(Clone)]
pub struct Security {
    /// The serving TLS configuration ([`crate::auth::tls::server_config`]).
    pub tls: Arc<rustls::ServerConfig>,
    pub authn: Authenticator,
}

/// Serves HTTPS on every one of `listeners` (e.g. loopback and the
/// advertise address) until `token` is cancelled. The listeners share the
/// in-flight limits; each has its own connection limit.
pub async fn serve(listeners: Vec<TcpListener>, state: Arc<ApiState>, security: Security, token: CancellationToken) {
    let inflight = InFlight::new(&state.config);
    let tls = tokio_rustls::TlsAcceptor::from(security.tls);
    let server = Arc::new(Server { state, inflight, tls, authn: security.authn });
    futures::future::join_all(listeners.into_iter().map(|l| conn::serve(l, server.clone(), token.clone()))).await;
}

/// One request, start to end; never fails (errors are `Status` responses).
/// Every request is counted and timed here, once (`crate::metrics`).
pub(crate) async fn handle(server: &Server, req: Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut labels = RequestLabels::of_method(&parts.method);
    let resp = match pipeline(server, parts, body, &mut labels).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    server.state.metrics.record_request(labels, resp.status().as_u16(), started.elapsed());
    resp
}

/// `labels` is set once the call is decided.
async fn pipeline(server: &Server, mut parts: Parts, body: Body, labels: &mut RequestLabels) -> Result<Response> {
    let state = &*server.state;
    // 0. Authentication, before anything else is looked at (as upstream's
    // filter chain): the user goes into the extensions for authorization.
    let user = authenticate(state, &server.authn, &parts).await?;
    parts.extensions.insert(user);
    // 1. Decide what is asked. `metrics.k8s.io` is not stored: its own handler.
    if let Some(path) = metrics_api::parse(parts.uri.path()) {
        let query = Query::parse(parts.uri.query())?;
        let user = authz::effective_user(&state.authz, &parts)?;
        authz::authorize(state, &user, &authz::metrics_attributes(&parts.method, parts.uri.path(), &path))?;
        return metrics_api::serve(state, &parts.method, path, &query).await;
    }
    let route = parse_path_with(parts.uri.path(), &state.crds.rows()).ok_or(ApiError::NoResource)?;
    let query = Query::parse(parts.uri.query())?;
    let call = Call::decide(&parts.method, route, query.watch())?;
    *labels = RequestLabels::of_call(&call);
    // 2. Limits: the slot is held until the response is built.
    let _slot = server.inflight.admit(call.class(), state.store.queue_is_full())?;
    let _inflight = state.metrics.inflight(call.class());
    let body = body::read(body, &parts.headers, &state.config).await?;
    // 3. Authorization (step 0 put the user into the extensions).
    let user = authz::effective_user(&state.authz, &parts)?;
    let request = authz::attributes(&parts.method, parts.uri.path(), &call, &query);
    authz::authorize(state, &user, &request)?;
    if let (Call::Resource(Verb::Create, target), Some(_)) = (&call, crate::auth::node::node_name(&user)) {
        authz::admit_node_create(&user, &request, &body::parse(target.info, &parts.headers, &body)?)?;
    }
    if let (Call::Resource(Verb::CreateToken, _), Some(_)) = (&call, crate::auth::node::node_name(&user)) {
        authz::admit_node_token(state, &user, &request, &body::parse_token_request(&parts.headers, &body)?)?;
    }
    // 4. The handler.
    match call {
        Call::Resource(verb, target) if target.info.is_review() => match verb {
            Verb::Create => {
                let reviewers = review::Reviewers { state, authn: &server.authn };
                review::create(&reviewers, &user, &parts.headers, &body, &target).await
            }
            _ => Err(call::not_allowed(&parts.method)),
        },
        Call::Fixed(route) => fixed(state, route, parts.uri.query(), &parts.headers),
        Call::Resource(Verb::Stream(sub), target) => {
            // The upgrade handle lives in the request's extensions.
            let ns = target.namespace.as_deref().unwrap_or("default");
            stream_proxy::proxy(state, ns, name(&target), sub, &mut parts).await
        }
        Call::Resource(verb, target) => {
            let req = Req { state, user: &user, headers: &parts.headers, query: &query, body };
            dispatch(&req, verb, &target).await
        }
    }
}

async fn dispatch(r: &Req<'_>, verb: Verb, t: &Target) -> Result<Response> {
    match verb {
        Verb::Get => read::get(r, t).await,
        Verb::List => read::list(r, t).await,
        Verb::Watch => read::watch(r, t).await,
        Verb::Create => write::create(r, t).await,
        Verb::Update(scope) => write::update(r, t, scope).await,
        Verb::Patch(scope) => write::patch(r, t, scope).await,
        Verb::Delete => delete::one(r, t).await,
        Verb::DeleteCollection => delete::collection(r, t).await,
        Verb::GetScale => sub::get_scale(r, t).await,
        Verb::UpdateScale => sub::update_scale(r, t).await,
        Verb::PatchScale => sub::patch_scale(r, t).await,
        Verb::Bind => sub::bind(r, t).await,
        Verb::Log => sub::log(r, t).await,
        Verb::Finalize => sub::finalize(r, t).await,
        Verb::CreateToken => sub::token(r, t).await,
        Verb::Evict => sub::evict(r, t).await,
        Verb::Stream(_) => Err(ApiError::NoResource),
    }
}

/// The request's user (`crate::auth::authn`): its verified client
/// certificate, else its bearer token (a ServiceAccount token's objects are
/// looked up in the store, then `sa_token::decide`s); anonymous only where
/// allowed.
async fn authenticate(state: &ApiState, authn: &Authenticator, parts: &Parts) -> Result<UserInfo> {
    let cert = parts.extensions.get::<PeerCert>().and_then(|p| p.0.as_ref());
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let identified = authn.authenticate(parts.uri.path(), cert, authorization).map_err(|_| ApiError::Unauthorized)?;
    resolve_identity(state, identified).await
}

/// The user `identified` names: final for users; a ServiceAccount token
/// holds only while the objects it names still exist (looked up in the
/// store, then `sa_token::decide`).
pub(super) async fn resolve_identity(state: &ApiState, identified: Identified) -> Result<UserInfo> {
    match identified {
        Identified::User(user) => Ok(user),
        Identified::BootstrapToken { id, secret } => {
            use crate::auth::bootstrap_token;
            let stored = super::token_request::stored_secret(
                state,
                bootstrap_token::NAMESPACE,
                &bootstrap_token::secret_name(&id),
            )
            .await?;
            let now = super::token_request::unix_now();
            match bootstrap_token::decide(&id, &secret, stored.as_ref(), now) {
                Ok(user) => Ok(crate::auth::authn::authenticated(user)),
                Err(reason) => {
                    tracing::debug!(%reason, token_id = id, "bootstrap token refused");
                    Err(ApiError::Unauthorized)
                }
            }
        }
        Identified::ServiceAccount(claims) => {
            let found = super::token_request::lookup(state, &claims).await?;
            let now = super::token_request::unix_now();
            sa_token::decide(&claims, now, &[sa_token::DEFAULT_AUDIENCE], &found).map_err(|reason| {
                tracing::debug!(%reason, subject = claims.sub, "service account token refused");
                ApiError::Unauthorized
            })
        }
    }
}

/// Health, version, OpenAPI and discovery documents.
fn fixed(state: &ApiState, route: Route, query: Option<&str>, headers: &HeaderMap) -> Result<Response> {
    let doc = match route {
        Route::Health => return Ok((StatusCode::OK, "ok").into_response()),
        Route::Version => discovery::version(),
        Route::Metrics => {
            let text = bosun_metrics::render(&state.metrics_registry);
            return Ok(([(header::CONTENT_TYPE, bosun_metrics::OPENMETRICS_TEXT)], text).into_response());
        }
        Route::OpenApiV2 => return Ok(openapi::v2_response()),
        Route::OidcConfiguration => {
            return state.oidc.as_ref().map(|d| d.configuration_response()).ok_or(ApiError::NoResource)
        }
        Route::Jwks => return state.oidc.as_ref().map(|d| d.jwks_response()).ok_or(ApiError::NoResource),
        Route::OpenApiV3(rest) => {
            let custom = state.crds.rows();
            return openapi::v3_response_with(&rest, query, headers, &custom, &state.openapi)
                .ok_or(ApiError::NoResource);
        }
        Route::CoreVersions => return Ok(roots::serve(state, Root::Core, headers)),
        Route::Groups => return Ok(roots::serve(state, Root::Groups, headers)),
        Route::Group(g) => discovery::group_in(&state.crds.rows(), &g).ok_or(ApiError::NoResource)?,
        Route::Resources(g, v) => {
            discovery::resource_list_in(&state.crds.rows(), &g, &v).ok_or(ApiError::NoResource)?
        }
        Route::Resource(_) => return Err(ApiError::NoResource),
    };
    Ok(json_response(StatusCode::OK, &doc, &[]))
}

/// A resource request as its handler sees it.
pub(crate) struct Req<'a> {
    state: &'a ApiState,
    /// Who asks (for admission that depends on the user).
    user: &'a UserInfo,
    headers: &'a HeaderMap,
    query: &'a Query,
    body: Bytes,
}

impl Req<'_> {
    /// The write options of the query, for this request's user.
    fn write_params(&self) -> Result<crate::apiserver::options::WriteParams> {
        let mut params = crate::apiserver::options::WriteParams::parse(self.query)?;
        params.write.requester = Some(self.user.clone());
        Ok(params)
    }

    fn content_type(&self) -> &str {
        self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn table_mode(&self) -> Option<IncludeObject> {
        let accept = self.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        table_mode(accept, self.query)
    }
}

/// The object name of a named target (`Call::decide` only routes named verbs with one).
fn name(t: &Target) -> &str {
    t.name.as_deref().unwrap_or_default()
}
