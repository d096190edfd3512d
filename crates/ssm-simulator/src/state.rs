//! The simulator's shared state: associations by account and region, identities, faults,
//! the rate limit, the request record, SQS queues, behind one lock.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::faults::{ActiveRule, TokenBucket};
use crate::identity::{Identity, Scope};
use crate::model::{AssociationState, LastExecutedFilter, LastExecutionDateMode};
use crate::queues::Queues;

/// What the `Simulator` clones and the server tasks share.
pub(crate) struct Shared {
    pub(crate) addr: SocketAddr,
    pub(crate) shutdown: CancellationToken,
    pub(crate) clock: Clock,
    pub(crate) state: Mutex<State>,
}

impl Shared {
    /// Locks the state; a panic in a test helper must not wedge the server.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Everything the simulator knows, behind [`Shared`]'s lock.
#[derive(Default)]
pub(crate) struct State {
    /// Associations by account and region, then by id.
    pub(crate) scopes: BTreeMap<Scope, BTreeMap<String, AssociationState>>,
    /// Access keys, roles and issued credentials.
    pub(crate) identity: Identity,
    /// When `LastExecutionDate` moves ([`Simulator::set_last_execution_date_mode`](crate::Simulator::set_last_execution_date_mode)).
    pub(crate) last_execution_date_mode: LastExecutionDateMode,
    /// How the `LastExecuted*` filters compare ([`Simulator::set_last_executed_filter`](crate::Simulator::set_last_executed_filter)).
    pub(crate) last_executed_filter: LastExecutedFilter,
    pub(crate) page_size: Option<usize>,
    pub(crate) empty_pages: usize,
    pub(crate) faults: Vec<ActiveRule>,
    pub(crate) rate_limit: Option<TokenBucket>,
    pub(crate) requests: Vec<RecordedRequest>,
    /// Requests dropped from the front of `requests` by [`Simulator::clear_requests`](crate::Simulator::clear_requests); record
    /// indexes count from the first request ever, so answers to requests in flight during a
    /// clear find their record, or none.
    pub(crate) requests_cleared: usize,
    pub(crate) demo_started: bool,
    /// Every `NextToken` sent -> the request token it answered ([`Fault::CycleNextTokens`](crate::Fault::CycleNextTokens)).
    pub(crate) issued_tokens: HashMap<String, Option<String>>,
    /// Leave out the `Date` header ([`Simulator::set_date_header`](crate::Simulator::set_date_header)).
    pub(crate) no_date_header: bool,
    /// SQS queues and the routes of State Manager events to them.
    pub(crate) queues: Queues,
}

impl State {
    pub(crate) fn association(&self, scope: &Scope, id: &str) -> Option<&AssociationState> {
        self.scopes.get(scope)?.get(id)
    }

    pub(crate) fn association_mut(
        &mut self,
        scope: &Scope,
        id: &str,
    ) -> Option<&mut AssociationState> {
        self.scopes.get_mut(scope)?.get_mut(id)
    }
}

/// One request as received, with the answer given.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Operation from `X-Amz-Target` without the `AmazonSSM.` or `AmazonSQS.` prefix (empty if absent), or the
    /// STS `Action` (`AssumeRole`, `GetCallerIdentity`).
    pub operation: String,
    /// `ssm` (AWS JSON 1.1), `sqs` (AWS JSON 1.0) or `sts` (query protocol).
    pub service: String,
    /// Caller's account: the account of the access key ([`DEFAULT_ACCOUNT`](crate::DEFAULT_ACCOUNT)
    /// for unknown static keys and for refused credentials).
    pub account: String,
    /// Region of the SigV4 credential scope ([`DEFAULT_REGION`](crate::DEFAULT_REGION) when absent).
    pub region: String,
    /// Access key of the SigV4 credential scope (empty when absent).
    pub access_key: String,
    /// `AssociationId` from the body, or the `ResourceId` of `ListTagsForResource`, if any.
    pub association_id: Option<String>,
    /// `Filters` as (key, value, type).
    pub filters: Vec<(String, String, String)>,
    /// `ListAssociations`' `AssociationFilterList` as (key, value).
    pub association_filters: Vec<(String, String)>,
    /// `MaxResults`, if present.
    pub max_results: Option<i32>,
    /// `NextToken`, if present.
    pub next_token: Option<String>,
    /// `AssumeRole`'s `RoleArn`.
    pub role_arn: Option<String>,
    /// `AssumeRole`'s `ExternalId`.
    pub external_id: Option<String>,
    /// HTTP status sent; 0 while unanswered or when no response was sent (hang, reset).
    pub status: u16,
    /// Error code sent (`__type`, or the STS `Code`), or the fault name (`Hang`,
    /// `ResetConnection`) when no response was sent.
    pub error_code: Option<String>,
}

impl RecordedRequest {
    /// The caller's scope: [`RecordedRequest::account`] in [`RecordedRequest::region`].
    pub fn scope(&self) -> Scope {
        Scope::new(self.account.clone(), self.region.clone())
    }
}
