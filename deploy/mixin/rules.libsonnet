// Recording rules (for the dashboard). Each takes one value per series across the replicas of a
// shard before summing, and keeps the group labels, the job, account and region.
local lib = import 'lib.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local by = function(labels) lib.by(c, labels),
    local sel = function(extra='') lib.sel(c, extra),
    local dedup = function(expr) lib.dedup(c, expr),
    groups+: [
      {
        name: 'ssm-association-exporter.recording',
        rules: [
          {
            // Executions finished per association and status over the last hour.
            record: 'association_id_status:ssm_association_executions:increase1h',
            expr: 'sum by (%s) (%s)' % [
              by(['job', 'association_id', 'account_id', 'region', 'status']),
              dedup('increase(ssm_association_executions_total%s[1h])' % sel()),
            ],
          },
          {
            // Share of finished executions that failed or timed out over the last day.
            record: 'association_id:ssm_association_executions_failure_ratio:1d',
            expr: |||
              sum by (%(by)s) (%(failed)s)
                / clamp_min(sum by (%(by)s) (%(all)s), 1)
            ||| % {
              by: by(['job', 'association_id', 'account_id', 'region']),
              failed: dedup('increase(ssm_association_executions_total%s[1d])' % sel('status=~"Failed|TimedOut"')),
              all: dedup('increase(ssm_association_executions_total%s[1d])' % sel()),
            },
          },
          {
            // Share of SSM API attempts that were throttled (both replicas of a shard call the
            // API: no deduplication here).
            record: 'job:ssm_association_exporter_api_throttled_ratio:rate5m',
            expr: |||
              sum by (%(by)s) (rate(ssm_association_exporter_api_requests_total%(throttled)s[5m]))
                / clamp_min(sum by (%(by)s) (rate(ssm_association_exporter_api_requests_total%(all)s[5m])), 1e-9)
            ||| % {
              by: by(['job']),
              throttled: sel('code=~"Throttl.*|TooManyRequestsException|RequestLimitExceeded"'),
              all: sel(),
            },
          },
        ],
      },
    ],
  },
}
