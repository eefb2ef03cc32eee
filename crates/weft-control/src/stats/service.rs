//! The report stream's server side (`weft.proxy.v1.Reports`): authenticated by the
//! workload token like every proxy call; the workload the stream names must be the
//! token's (a workload stored under another service account is refused), so a proxy
//! reports only its own traffic and sees only its own taps.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};
use weft_api::pb::v1 as pb;
use weft_api::pb::v1::reports_server::{Reports, ReportsServer};
use weft_api::resource::{Key, Kind};

use super::Stats;
use crate::identity::{bearer_token, own_workload, refusal_status, Tokens};
use crate::store::Store;

/// Largest report accepted: 4 MiB (a full window is about 1 MiB).
pub const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;

/// The report service.
pub struct ReportService {
    stats: Arc<Stats>,
    tokens: Arc<Tokens>,
    store: Arc<dyn Store>,
}

/// The gRPC service over `stats`.
pub fn service(
    stats: Arc<Stats>,
    tokens: Arc<Tokens>,
    store: Arc<dyn Store>,
) -> ReportsServer<ReportService> {
    ReportsServer::new(ReportService {
        stats,
        tokens,
        store,
    })
    .max_decoding_message_size(MAX_REPORT_BYTES)
}

type Answers = Pin<Box<dyn Stream<Item = Result<pb::ControlRequest, Status>> + Send>>;

#[tonic::async_trait]
impl Reports for ReportService {
    type ReportStream = Answers;

    async fn report(
        &self,
        request: Request<Streaming<pb::ProxyReport>>,
    ) -> Result<Response<Answers>, Status> {
        let token = bearer_token(request.metadata())?;
        let claims = self
            .tokens
            .authenticate(token, SystemTime::now())
            .await
            .map_err(|refusal| refusal_status(&refusal))?;
        let mut reports = request.into_inner();
        let first = reports
            .message()
            .await?
            .and_then(|r| r.report)
            .ok_or_else(|| Status::invalid_argument("a report stream starts with its workload"))?;
        let pb::proxy_report::Report::Workload(name) = first else {
            return Err(Status::invalid_argument(
                "a report stream starts with its workload's name",
            ));
        };
        if name.is_empty() {
            return Err(Status::invalid_argument("the workload's name is empty"));
        }
        let key = Key {
            kind: Kind::Workload,
            namespace: claims.namespace.clone(),
            name: name.clone(),
        };
        own_workload(self.store.as_ref(), &key, &claims.service_account).await?;
        let proxy = (claims.namespace, name);
        let (session, control) = self.stats.connect(proxy.clone());
        let stats = self.stats.clone();
        tokio::spawn(async move {
            loop {
                match reports.message().await {
                    Ok(Some(pb::ProxyReport {
                        report: Some(report),
                    })) => match report {
                        pb::proxy_report::Report::Window(w) => stats.window(&proxy, session, w),
                        pb::proxy_report::Report::Tap(e) => stats.tap_event(&proxy, e),
                        pb::proxy_report::Report::Workload(_) => {}
                    },
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            stats.disconnect(&proxy, session);
        });
        let answers = futures::stream::unfold(control, |mut control| async move {
            control.recv().await.map(|c| (Ok(c), control))
        });
        Ok(Response::new(Box::pin(answers)))
    }
}
