//! A simulated AWS Systems Manager endpoint speaking the real AWS JSON 1.1 wire protocol, with
//! STS `AssumeRole` and `GetCallerIdentity` beside it.
//!
//! [`Simulator`] is a real HTTP/1.1 server (hyper, bound to `127.0.0.1`) that answers
//! `DescribeAssociationExecutions`, `DescribeAssociationExecutionTargets`,
//! `DescribeAssociation`, `ListAssociations` and `ListTagsForResource` the way SSM does, and STS `AssumeRole` and `GetCallerIdentity` the way
//! STS does, and SQS `ReceiveMessage`, `DeleteMessage`, `DeleteMessageBatch` and
//! `GetQueueAttributes` on queues fed with State Manager events, so the real `aws-sdk-ssm`,
//! `aws-sdk-sts` and `aws-sdk-sqs` clients and aws-config's `AssumeRoleProvider` work against
//! it unchanged when pointed at [`Simulator::endpoint_url`].
//! It is used by integration tests, benchmarks (the `ssm-simulator` binary) and the exporter's
//! `--demo` mode.
//!
//! What it models:
//! - the wire protocol: `POST /`, `X-Amz-Target: AmazonSSM.<Operation>`, a SigV4
//!   `Authorization` header (its presence is checked, the signature is not), JSON bodies,
//!   `x-amzn-RequestId` and `Date` headers, error bodies `{"__type": "<Code>", "message": "..."}`;
//! - request validation following the official service model (association id pattern,
//!   `MaxResults` 1-50, filter keys and operators, ISO-8601 filter values); several filters in
//!   one request must all hold (AND), including two `CreatedTime` filters (a time window);
//! - paging with opaque `NextToken`s that encode the sort key of the last item returned, so a
//!   paging sequence stays stable while new executions are inserted; optional short pages
//!   ([`Simulator::set_page_size`]) and empty pages that still carry a token
//!   ([`Simulator::set_empty_pages`]);
//! - late visibility: executions with `visible == false` exist but are not returned yet by
//!   `DescribeAssociationExecutions`, while the association's `LastExecutionDate`,
//!   `LastSuccessfulExecutionDate` and `Overview` (in `ListAssociations` and
//!   `DescribeAssociation`) already reflect them, as in AWS, where an association moves when it
//!   runs, not when the run becomes visible;
//!   executions whose status is not final (`Pending`, `InProgress`, `Associated`, any unknown
//!   string) stay so until changed; `CreatedTime` may be anything, e.g. far in the future;
//! - faults ([`FaultRule`]), each restricted to an operation, an association, requests with a
//!   `NextToken`, a window (`skip`, `times`) and optionally a seeded fraction of requests
//!   ([`FaultRule::fraction`], e.g. sustained 50 % throttling): throttling, server errors, bad
//!   tokens, auth errors, delays, hung requests, connections closed without a response, and
//!   page-token misbehaviour ([`Fault::RepeatNextToken`]: the token sent comes back;
//!   [`Fault::CycleNextTokens`]: tokens cycle A -> B -> A); a token-bucket rate limit;
//! - a clock: host time plus [`Simulator::set_clock_offset_ms`]. Every response carries an HTTP
//!   `Date` from it, and requests whose SigV4 `X-Amz-Date` is more than 5 minutes away from it
//!   are rejected as AWS does (HTTP 400 `InvalidSignatureException`, "Signature expired: ..." or
//!   "Signature not yet current: ..."). The demo scenario uses the same clock;
//! - a record of every request ([`Simulator::requests`]; counted by
//!   [`Simulator::request_count`] and [`Simulator::request_counts_by_scope`], emptied by
//!   [`Simulator::clear_requests`], both at once by
//!   [`Simulator::take_request_counts_by_scope`]) and the ground truth an exporter should
//!   converge to ([`Simulator::ground_truth`]).
//!
//! # The estate: accounts, regions, roles
//! - Associations live in a [`Scope`]: one account in one region. Every SSM operation answers
//!   from the caller's scope only. The region is the one in the SigV4 credential scope
//!   (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/ssm/aws4_request, ...`;
//!   [`DEFAULT_REGION`] when the header names none). The account is the access key's:
//!   [`Simulator::add_access_key`] maps static keys, keys issued by `AssumeRole` belong to the
//!   role's account, and any other key belongs to [`DEFAULT_ACCOUNT`]. The single-account API
//!   ([`Simulator::add_association`], [`Simulator::add_execution`], [`Simulator::ground_truth`],
//!   ...) is the default account in `us-east-1`; the `*_in(account, region, ...)` methods
//!   reach every other scope ([`Simulator::add_association_in`],
//!   [`Simulator::add_execution_in`], [`Simulator::update_execution_in`],
//!   [`Simulator::executions_in`], [`Simulator::ground_truth_in`],
//!   [`Simulator::estate_ground_truth`]).
//! - STS `AssumeRole` (query protocol: `POST /`, form-encoded
//!   `Action=AssumeRole&Version=2011-06-15&RoleArn=..&RoleSessionName=..[&ExternalId=..]
//!   [&DurationSeconds=..]`, recognised by the SigV4 service `sts` or the form content type)
//!   answers `text/xml`
//!   `AssumeRoleResponse/AssumeRoleResult/{AssumedRoleUser{Arn,AssumedRoleId},
//!   Credentials{AccessKeyId,SecretAccessKey,SessionToken,Expiration}}` with `Expiration` in
//!   whole seconds (`2026-11-27T10:15:00Z`). Roles come from [`Simulator::add_role`]; an unknown
//!   role, a caller account the role does not trust, or a missing or wrong `ExternalId` get
//!   HTTP 403 `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>...`;
//!   malformed input gets 400 `ValidationError`. Issued credentials need their session token
//!   (else 403 `UnrecognizedClientException`) and stop working at `Expiration` on the
//!   simulator's clock (HTTP 400 `ExpiredTokenException`); [`Simulator::set_assumed_role_lifetime`]
//!   shortens them for tests.
//! - STS `GetCallerIdentity` (`Action=GetCallerIdentity&Version=2011-06-15`, same protocol)
//!   answers `GetCallerIdentityResponse/GetCallerIdentityResult/{Arn,UserId,Account}` for the
//!   caller's account as SSM calls see it: an issued key gives its role session
//!   (`arn:aws:sts::<account>:assumed-role/<role>/<session>`, `UserId` `AROA...:<session>`,
//!   the role id stable per role), any other key the IAM user
//!   `arn:aws:iam::<account>:user/simulated` (`UserId` `AIDA...`, stable per access key).
//!   Refused credentials get the errors `AssumeRole` callers get; any other version or action
//!   gets 400 `InvalidAction`.
//! - `ListAssociations`: `AssociationFilterList` with lower-case `key`/`value` (`Name` is the
//!   document, `AssociationName`, `AssociationId`, `AssociationStatusName` (the overview
//!   status), `LastExecutedBefore`/`LastExecutedAfter` (only the shape of AWS's one public
//!   example, `2017-05-01T01:00:00.000Z`, with or without a fraction, else
//!   `ValidationException`; compared with `LastExecutionDate` strictly, inclusively or not at
//!   all: [`Simulator::set_last_executed_filter`], as AWS documents neither),
//!   `ResourceGroupName` (target `resource-groups:Name`), `InstanceId`,
//!   and `CloudConnectorId`, which matches nothing), all of which must hold; `MaxResults`
//!   1-50; associations in id order, paged by keyset tokens bound to the scope (stable while
//!   associations come and go). [`Simulator::set_page_size`] and
//!   [`Simulator::set_empty_pages`] apply as to executions.
//! - `ListTagsForResource` (`ResourceType` `Association`): [`Simulator::set_tags_in`].
//! - `DescribeAssociationExecutionTargets`: `AssociationId` and `ExecutionId` required (an
//!   unknown or not yet visible execution gets `AssociationExecutionDoesNotExist`); `Filters`
//!   `Key`/`Value` without operator (`Status`, `ResourceId`, `ResourceType`), all of which must
//!   hold; `MaxResults` 1-50; targets in `ResourceId` order, paged by keyset tokens bound to the
//!   execution. Targets come from [`SimExecution::targets`] ([`SimTarget`]); an execution with
//!   targets and no explicit `ResourceCountByStatus` reports one derived from them, and
//!   [`GroundTruth::targets`] counts the non-successful targets of final executions.
//! - Lifecycle at any time: [`Simulator::add_association_with_details_in`] (targets, document
//!   version, instance id: [`AssociationDetails`]), [`Simulator::update_association_in`]
//!   (`AssociationVersion` + 1; later executions carry the new version),
//!   [`Simulator::replace_association_in`] (new id, same name, old one deleted),
//!   [`Simulator::remove_association_in`]. For benchmarks, [`Simulator::add_associations_in`]
//!   adds many at once.
//! - [`Simulator::set_last_execution_date_mode`]: whether an association's
//!   `LastExecutionDate` moves when a run starts or when it ends (AWS does not say). Either
//!   way invisible executions count, and so does the `Overview`, which follows the newest
//!   execution by `CreatedTime`: an exporter that polls executions only when
//!   `LastExecutionDate` or the `Overview` change can see the change before the execution is
//!   visible, and must catch late-visible executions by other means.
//! - Fault rules match an account ([`FaultRule::account`]) or region ([`FaultRule::region`])
//!   as well as an operation, including `ListAssociations`, `ListTagsForResource` (its
//!   `ResourceId` is the association), `AssumeRole` and `GetCallerIdentity` (both answered in
//!   STS's codes: `Throttling`, `AccessDenied` 403, `ExpiredToken`, `InternalFailure` 500). A region's endpoint
//!   "unreachable": `FaultRule::new(Fault::ResetConnection).region("eu-west-1").forever()`.
//!
//! # SQS and State Manager events
//! - Queues: [`Simulator::add_queue`] creates one at `https://sqs.<region>.amazonaws.com/
//!   <account>/<name>` ([`queue_url`]); the `aws-sdk-sqs` client sends that `QueueUrl` in the
//!   body while its endpoint points at [`Simulator::endpoint_url`] (a URL on another host is in
//!   the caller's signing region). AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.<Operation>`,
//!   `application/x-amz-json-1.0`): `ReceiveMessage` (`MaxNumberOfMessages` 1-10,
//!   `WaitTimeSeconds` 0-20: a long poll answers as soon as a message becomes receivable,
//!   else after the wait; `VisibilityTimeout` per request or the queue's, 30 s by default:
//!   [`Simulator::set_queue_visibility_timeout`]; a new `ReceiptHandle` per receive;
//!   `ApproximateReceiveCount`, `SentTimestamp`, `ApproximateFirstReceiveTimestamp` when asked;
//!   a message not deleted comes back when its visibility timeout ends), `DeleteMessage` (the
//!   latest handle deletes; an outdated one, or one of a deleted message, succeeds without
//!   deleting; anything else is `ReceiptHandleIsInvalid`), `DeleteMessageBatch` (at most 10
//!   entries with distinct, well-formed `Id`s, else the whole call fails; bad handles are
//!   listed in `Failed[]` with HTTP 200) and `GetQueueAttributes`. Errors are
//!   `{"__type": "com.amazonaws.sqs#<Code>", "message": ...}` with the
//!   `x-amzn-query-error: <QueryCode>;Sender` header the SDK matches on (an unknown queue is
//!   `AWS.SimpleQueueService.NonExistentQueue`, the SDK's `QueueDoesNotExist`). Queue calls
//!   are recorded ([`RecordedRequest::service`] `sqs`) but neither rate-limited nor subject
//!   to [`FaultRule`]s: queues have their own faults.
//! - Events: every execution added or changed ([`Simulator::add_execution_in`],
//!   [`Simulator::update_execution_in`], the demo's and the binary's activity) sends, to the
//!   queues that [`EventRoute`]s ([`Simulator::route_events`]) name for its account and region,
//!   the EventBridge event as a rule without input transformer sends it (the whole event JSON
//!   as the body): [`ASSOCIATION_STATE_CHANGE`] when the execution is new or its status
//!   changed (`detail.status` `Pending`, `Success` or `Failed` from the execution's status,
//!   `association-status-aggregated-count` from its `ResourceCountByStatus`), and
//!   [`INSTANCE_ASSOCIATION_STATE_CHANGE`] for each target that is new or changed status. The
//!   keys are those of the user guide's examples, `targets` and the aggregated count as
//!   JSON-encoded strings; no execution id, no association name. Events are derived from the
//!   model and never feed it: counts stay in the SSM APIs, whatever happens to the events.
//!   An execution that is not visible yet sends its events all the same (AWS announces a run
//!   when it changes, not when `DescribeAssociationExecutions` shows it), so an event can
//!   come before the execution it announces can be read; a change of visibility alone sends
//!   none.
//!   An event goes once to each queue whatever the number of routes that match it.
//! - Faults per queue ([`Simulator::set_queue_faults`], [`QueueFaults`], seeded): lost,
//!   duplicated (same event id), delayed, reordered (newest first) and malformed events (a
//!   non-JSON body, a foreign source, a missing `association-id`, following the event); and
//!   [`Simulator::set_queue_outage`] ([`QueueOutage`]): HTTP 500, a closed connection, or
//!   `RequestThrottled` (a throttling error to the SDK) for a while. For tests:
//!   [`Simulator::queue_stats`] ([`QueueStats`]), [`Simulator::inject_message`] (raw bodies,
//!   untouched by faults), [`Simulator::queue_messages`]. The demo's queue:
//!   [`Simulator::add_demo_queue`].
//!
//! Shapes follow the service model: `AlarmConfiguration.Alarms` and `TriggeredAlarms` hold at
//! most one entry and alarm states are `ALARM` or `UNKNOWN`, so the test helpers that add data
//! panic on anything else.
//!
//! # Layout
//! Each module uses only modules listed below it (checked by `scripts/check-module-cycles`).
//! - `main.rs`: the `ssm-simulator` binary (uses only the public API).
//! - `lib.rs`: these docs and the public API's re-exports.
//! - `demo.rs`: the demo scenario.
//! - `specs.rs`: the text forms of settings for the binary: durations, queue faults and
//!   outages, event routes, queue URLs.
//! - `estate.rs`: the per-scope API: lifecycle, tags, roles, ground truth per scope.
//! - `queue_api.rs`: the SQS API: queues, event routes, queue faults and outages, queue state,
//!   injected messages.
//! - `simulator.rs`: [`Simulator`]: start, shutdown, settings, the request record and ground
//!   truth of the default scope.
//! - `wire.rs`: the HTTP server, both protocols' parsing and dispatch, the caller's scope,
//!   recording requests, error bodies.
//! - `sqs.rs`: SQS `ReceiveMessage` (long polling), `DeleteMessage`, `DeleteMessageBatch`,
//!   `GetQueueAttributes`, SQS errors and queue outages.
//! - `sts.rs`: STS `AssumeRole` and `GetCallerIdentity` (form parsing, XML answers and errors).
//! - `listing.rs`: `ListAssociations` (filters, tokens, paging) and `ListTagsForResource`.
//! - `targets.rs`: `DescribeAssociationExecutionTargets`: filters, page tokens, paging.
//! - `paging.rs`: `DescribeAssociationExecutions`: filters, page tokens, paging.
//! - `responses.rs`: execution items, `DescribeAssociation`'s description, overview and targets.
//! - `events.rs`: the EventBridge-shaped State Manager events of an execution's change, sent
//!   to the routed queues.
//! - `state.rs`: the shared state behind one lock: associations per scope, identities, faults,
//!   the rate limit, [`RecordedRequest`]s, queues.
//! - `queues.rs`: queues' messages, visibility timeouts, receipt handles, event routes
//!   ([`EventRoute`]) and per-queue faults ([`QueueFaults`], [`QueueOutage`]).
//! - `faults.rs`: [`Fault`], [`FaultRule`], the rate limit.
//! - `api.rs`: what the wire and the handlers share: operation names, the AWS error answer,
//!   association id validation.
//! - `identity.rs`: [`Scope`], SigV4 credential scopes, access keys, roles, issued credentials,
//!   callers' principals.
//! - `clock.rs`: the simulator's clock, `Date` headers, the SigV4 request-time check.
//! - `exporter_config.rs`: [`ExporterConfig`], the exporter configurations the binary writes
//!   (a list of IDs, or an estate: [`EstateAccount`]).
//! - `model.rs`: associations (versions, details, overview, `LastExecutionDate` modes),
//!   executions, ground truth.

#![forbid(unsafe_code)]

mod api;
mod clock;
mod demo;
mod estate;
mod events;
mod exporter_config;
mod faults;
mod identity;
mod listing;
mod model;
mod paging;
mod queue_api;
mod queues;
mod responses;
mod simulator;
mod specs;
mod sqs;
mod state;
mod sts;
mod targets;
mod wire;

pub use demo::{DemoAssociation, DEMO_ASSOCIATIONS};
pub use events::{ASSOCIATION_STATE_CHANGE, INSTANCE_ASSOCIATION_STATE_CHANGE};
pub use exporter_config::{EstateAccount, ExporterConfig};
pub use faults::{Fault, FaultRule};
pub use identity::{Scope, DEFAULT_ACCOUNT, DEFAULT_REGION};
pub use model::{
    format_filter_time, is_final_status, uuid_like, AssociationDetails, GroundTruth,
    LastExecutedFilter, LastExecutionDateMode, SimAssociation, SimExecution, SimTarget,
};
pub use queue_api::DEMO_QUEUE_NAME;
pub use queues::{
    queue_url, EventRoute, QueueFaults, QueueOutage, QueueStats, DEFAULT_VISIBILITY_TIMEOUT,
};
pub use simulator::Simulator;
pub use specs::{
    parse_duration, parse_event_route, parse_queue_faults, parse_queue_outage, split_queue_url,
    split_target, ScheduledOutage,
};
pub use state::RecordedRequest;
