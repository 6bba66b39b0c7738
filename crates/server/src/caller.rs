//! `rapport.common.v1.CallerService`, served by every service: who the calling key is.

use crate::auth::Principal;
use rapport_proto::common::v1 as pb;
use rapport_proto::common::v1::caller_service_server::{CallerService, CallerServiceServer};
use tonic::{Request, Response, Status};

/// The fully qualified name of the service, for health and reflection.
pub const SERVICE_NAME: &str = "rapport.common.v1.CallerService";

/// Answers who the calling key is, from what the guard found.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerApi;

/// The service, ready to route.
pub fn service() -> CallerServiceServer<CallerApi> {
    CallerServiceServer::new(CallerApi)
}

#[tonic::async_trait]
impl CallerService for CallerApi {
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let p = Principal::of(&req)?;
        Ok(Response::new(pb::WhoAmIResponse {
            tenant: p.tenant.clone(),
            role: p.role.name().to_owned(),
            key_id: p.key_id.clone(),
        }))
    }
}
