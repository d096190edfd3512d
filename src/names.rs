//! Every metric name the exporter publishes, in one place: used by the `/metrics` text
//! (`exposition`), the exporter's own metrics (`metrics`), the status page and the tests.

// Per-association families (rendered by `exposition.rs` from the store).
pub const EXECUTIONS_TOTAL: &str = "ssm_association_executions_total";
pub const EXECUTION_DURATION_SECONDS: &str = "ssm_association_execution_duration_seconds";
pub const EXECUTIONS_WITHOUT_END_TIME_TOTAL: &str =
    "ssm_association_executions_without_end_time_total";
pub const EXECUTIONS_IN_PROGRESS: &str = "ssm_association_executions_in_progress";
pub const LAST_EXECUTION_STATUS: &str = "ssm_association_last_execution_status";
pub const LAST_EXECUTION_TIMESTAMP_SECONDS: &str =
    "ssm_association_last_execution_timestamp_seconds";
pub const LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "ssm_association_last_success_timestamp_seconds";
pub const LAST_EXECUTION_RESOURCES: &str = "ssm_association_last_execution_resources";
pub const TRIGGERED_ALARM: &str = "ssm_association_triggered_alarm";
pub const TRIGGERED_ALARMS_TOTAL: &str = "ssm_association_triggered_alarms_total";
pub const TARGET_RESULTS_TOTAL: &str = "ssm_association_target_results_total";
pub const FAILING_TARGET: &str = "ssm_association_failing_target";
pub const FAILING_TARGETS_LEFT_OUT: &str = "ssm_association_failing_targets_left_out";
pub const INFO: &str = "ssm_association_info";
pub const SCHEDULE_INTERVAL_SECONDS: &str = "ssm_association_schedule_interval_seconds";
pub const POLL_SUCCESS: &str = "ssm_association_exporter_poll_success";
pub const LAST_POLL_SUCCESS_TIMESTAMP_SECONDS: &str =
    "ssm_association_exporter_last_poll_success_timestamp_seconds";
pub const WATERMARK_TIMESTAMP_SECONDS: &str =
    "ssm_association_exporter_watermark_timestamp_seconds";
pub const POLL_ERRORS_TOTAL: &str = "ssm_association_exporter_poll_errors_total";
pub const POLL_DELAY_SECONDS: &str = "ssm_association_exporter_poll_delay_seconds";
pub const PENDING_ABANDONED_TOTAL: &str = "ssm_association_exporter_pending_abandoned_total";

// The exporter's own metrics (registered in `metrics.rs`).
pub const API_REQUESTS_TOTAL: &str = "ssm_association_exporter_api_requests_total";
pub const API_REQUEST_DURATION_SECONDS: &str =
    "ssm_association_exporter_api_request_duration_seconds";
pub const RATE_LIMIT_WAIT_SECONDS_TOTAL: &str =
    "ssm_association_exporter_rate_limit_wait_seconds_total";
pub const CREDENTIALS_VALID: &str = "ssm_association_exporter_credentials_valid";
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str =
    "ssm_association_exporter_config_last_reload_successful";
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: &str =
    "ssm_association_exporter_config_last_reload_success_timestamp_seconds";
pub const STATE_LOAD_ERRORS_TOTAL: &str = "ssm_association_exporter_state_load_errors_total";
pub const STATE_SAVE_ERRORS_TOTAL: &str = "ssm_association_exporter_state_save_errors_total";
pub const LAST_STATE_SAVE_TIMESTAMP_SECONDS: &str =
    "ssm_association_exporter_last_state_save_timestamp_seconds";
pub const BUILD_INFO: &str = "ssm_association_exporter_build_info";
pub const STATE_SAVE_FAILING: &str = "ssm_association_exporter_state_save_failing";
pub const EXECUTION_LATENESS_SECONDS: &str = "ssm_association_exporter_execution_lateness_seconds";
pub const FUTURE_DATED_EXECUTIONS_TOTAL: &str =
    "ssm_association_exporter_future_dated_executions_total";
pub const TARGET_DETAIL_EXECUTIONS_SKIPPED_TOTAL: &str =
    "ssm_association_exporter_target_detail_executions_skipped_total";
pub const ASSOCIATIONS_AWAITING_FIRST_POLL: &str =
    "ssm_association_exporter_associations_awaiting_first_poll";
pub const AWS_CLOCK_OFFSET_SECONDS: &str = "ssm_association_exporter_aws_clock_offset_seconds";
pub const ACCESS_DENIED: &str = "ssm_association_exporter_access_denied";
pub const LISTING_SUCCESS: &str = "ssm_association_exporter_listing_success";
pub const ASSOCIATIONS_WATCHED: &str = "ssm_association_exporter_associations_watched";
pub const POLLS_TOTAL: &str = "ssm_association_exporter_polls_total";
pub const STATIC_ASSOCIATIONS_NOT_FOUND: &str =
    "ssm_association_exporter_static_associations_not_found";
pub const DISCOVERY_SELECTOR_ASSOCIATIONS: &str =
    "ssm_association_exporter_discovery_selector_associations";
pub const SHARD_ORDINAL: &str = "ssm_association_exporter_shard_ordinal";
pub const TOTAL_SHARDS: &str = "ssm_association_exporter_total_shards";
pub const OWNED_ASSOCIATIONS: &str = "ssm_association_exporter_owned_associations";
pub const BACKFILL_TRUNCATED_TOTAL: &str = "ssm_association_exporter_backfill_truncated_total";
pub const HANDOFF_ABSORBED_EXECUTIONS_TOTAL: &str =
    "ssm_association_exporter_handoff_absorbed_executions_total";
pub const EVENTS_RECEIVED_TOTAL: &str = "ssm_association_exporter_events_received_total";
pub const EVENT_TO_COUNT_SECONDS: &str = "ssm_association_exporter_event_to_count_seconds";
pub const EVENT_QUEUE_ERRORS_TOTAL: &str = "ssm_association_exporter_event_queue_errors_total";
pub const EVENT_QUEUE_LAST_RECEIVE_TIMESTAMP_SECONDS: &str =
    "ssm_association_exporter_event_queue_last_receive_timestamp_seconds";
