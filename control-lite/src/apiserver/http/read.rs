//! GET, LIST and WATCH.

use axum::http::StatusCode;
use axum::response::Response;

use super::path::Target;
use super::{name, Req};
use crate::apiserver::options::ListOptions;
use crate::apiserver::response::{list_response, object_response};
use crate::apiserver::selectors::Selectors;
use crate::apiserver::status::Result;
use crate::apiserver::{crud, list_read, paging, watch};

/// GET one object (or its `/status`).
pub async fn get(r: &Req<'_>, t: &Target) -> Result<Response> {
    let (obj, _) = crud::get(r.state, t.info, t.namespace.as_deref(), name(t)).await?;
    Ok(object_response(StatusCode::OK, t.info, &obj, r.table_mode(), &[]))
}

/// GET a collection.
pub async fn list(r: &Req<'_>, t: &Target) -> Result<Response> {
    let opts = ListOptions::parse(r.query)?;
    let plan = paging::plan(&opts)?;
    let (stored, meta) = list_read::list_page(r.state, t.info, t.namespace.as_deref(), &plan, &opts.selectors).await?;
    // Selected already: decoding for the response is all that is left.
    list_response(t.info, crud::matching(t.info, &stored, &Selectors::default()), &meta, r.table_mode())
}

/// GET with `watch=true`, on a collection or one named object.
pub async fn watch(r: &Req<'_>, t: &Target) -> Result<Response> {
    let mut opts = ListOptions::parse(r.query)?;
    if let Some(name) = &t.name {
        opts.selectors.fields.0.push(("metadata.name".into(), true, name.clone()));
    }
    watch::serve(r.state, t.info, t.namespace.as_deref(), opts.selectors, &opts.watch_options, r.table_mode()).await
}
