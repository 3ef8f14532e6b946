//! The OpenAPI document, generated from the handlers (utoipa). The web UI's API types
//! are generated from a copy of it (`web-ui/src/api/openapi.json`).

use rivulet_plugin::GuestLogLine;
use rivulet_server::{
    CheckpointsView, EdgeStatus, ExceptionInfo, HistoryEvent, JobDetail, JobRecord, JobStatus, NodeStatus, PluginMeta, PluginRef, SavepointInfo,
    SnapshotStat, UpgradeOutcome,
};
use utoipa::OpenApi;

use crate::auth::Role;
use crate::error::ErrorBody;
use crate::routes::jobs::{
    __path_get_job, __path_job_checkpoints, __path_job_exceptions, __path_job_history, __path_job_logs, __path_list_jobs, __path_submit_job,
    SubmitRequest,
};
use crate::routes::operations::{
    __path_get_savepoint, __path_list_savepoints, __path_rescale_job, __path_stop_job, __path_trigger_savepoint, __path_upgrade_job, RescaleRequest,
    StopRequest, UpgradeRequest,
};
use crate::routes::plugins::{__path_delete_plugin, __path_get_plugin, __path_list_plugins, __path_upload_plugin};
use crate::routes::system::{__path_healthz, __path_metrics_text, __path_openapi_json, __path_session, Health, Session};
use crate::routes::workers::{__path_list_workers, SchedulerKind, WorkerInfo, WorkersView};

/// The OpenAPI document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Rivulet", description = "Stream processing with WebAssembly operators: plugins, jobs, savepoints, hot swap."),
    paths(
        healthz, metrics_text, openapi_json, session, upload_plugin, list_plugins, get_plugin, delete_plugin, submit_job, list_jobs, get_job,
        job_exceptions, job_checkpoints, job_history, job_logs, trigger_savepoint, get_savepoint, list_savepoints, stop_job, rescale_job, upgrade_job,
        list_workers
    ),
    components(schemas(
        ErrorBody, Health, PluginMeta, JobRecord, JobStatus, JobDetail, NodeStatus, EdgeStatus, SnapshotStat, CheckpointsView, HistoryEvent, ExceptionInfo,
        SavepointInfo, PluginRef, UpgradeOutcome, GuestLogLine, SubmitRequest, StopRequest, RescaleRequest, UpgradeRequest, Session, Role,
        WorkersView, WorkerInfo, SchedulerKind
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

/// The bearer scheme; `/healthz` without it; and on every other operation the answers
/// given before a handler runs: 401 (no or a wrong token), 403 (the token's role is not
/// enough), 400 for a malformed query string or body, 413 for a body over the limit.
impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        let error = |what: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten() {
                if path == "/healthz" {
                    op.security = Some(Vec::new());
                    continue;
                }
                let has_query = op.parameters.iter().flatten().any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query);
                let has_body = op.request_body.is_some();
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert_with(|| error("No or a wrong bearer token"));
                responses.entry("403".into()).or_insert_with(|| error("The token's role may not do this"));
                if has_query || has_body {
                    responses.entry("400".into()).or_insert_with(|| error("A malformed query string or request body, named in the answer"));
                }
                if has_body {
                    responses.entry("413".into()).or_insert_with(|| error("The request body is larger than the server accepts"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    /// The web UI's API types are generated from a copy of the OpenAPI document: it must
    /// be this server's, or the UI would type-check against an API that is not there.
    #[test]
    fn the_web_ui_has_the_current_openapi_document() {
        let want = format!("{}\n", super::ApiDoc::openapi().to_pretty_json().expect("the document serializes"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web-ui/src/api/openapi.json");
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "{path} is not the server's OpenAPI document: run `make ui-api` (rivulet openapi > {path}) and rebuild the UI");
    }
}
