// The alerts. Every alert: summary, description, runbook_url (a section of docs/runbooks.md);
// per-association alerts name the association and carry its account_id and region (joined with
// ssm_association_info; the alert still fires, by ID, when the info metric is missing) and link
// to its page in the AWS console (console_url). They keep the group labels (cluster, namespace)
// and `job`, never `instance`: a replaced pod or task does not start a new alert, and the two
// replicas of a shard (high availability) fire one alert with the count of one.
// Unit tests: deploy/prometheus/alerts_test.yml.
local lib = import 'lib.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local by = function(labels) lib.by(c, labels),
    local sel = function(extra='') lib.sel(c, extra),
    local dedup = function(expr) lib.dedup(c, expr),
    local named = function(expr) lib.named(c, expr),
    local perAssociation = ['job', 'association_id', 'account_id', 'region'],
    local association = lib.association,
    local console = { console_url: lib.consoleUrl },

    // Executions counted in a window, once per execution across replicas; a window with a
    // counter reset (an exporter restart without a state file re-reads its look-back) does not
    // count on its own, and a new pod's or task's series start at their full value (never 0 ->
    // N), so a replacement does not fire.
    local counted = function(metric, matchers, window, labels)
      |||
        sum by (%(by)s) (
          %(dedup)s
        ) > 0
      ||| % {
        by: by(labels),
        dedup: dedup('\n    increase(%(m)s[%(w)s]) unless resets(%(m)s[%(w)s]) > 0\n  ' % {
          m: metric + sel(matchers),
          w: window,
        }),
      },

    groups+: [
      {
        name: 'ssm-association-exporter.alerts',
        rules: [
          {
            // One alert per failure episode: it fires on the first failed or timed-out
            // execution and lasts while the newest execution is failed (an association that
            // fails every run stays firing, rather than a fire/resolve pair per run), or for
            // the 15-minute window when a newer run succeeded. Its value is the number of
            // failures counted in the window (0: only the newest execution says so, e.g.
            // after a restart).
            alert: 'SSMAssociationExecutionFailed',
            expr: named(|||
              (
                %(counted)s
              )
              or
              (
                max by (%(by)s) (ssm_association_last_execution_status%(last)s) == 1
              ) * 0
            ||| % {
              counted: lib.indent(counted('ssm_association_executions_total', 'status=~"Failed|TimedOut"', '15m', perAssociation), 2),
              by: by(perAssociation),
              last: sel('status=~"Failed|TimedOut"'),
            }),
            labels: { severity: 'warning' },
            annotations: {
              summary: 'SSM association %s had failed or timed-out executions' % association,
              description: '{{ if eq $value 0.0 }}The newest finished execution of association %(a)s ended Failed or TimedOut, and no newer one has finished since.{{ else }}{{ $value | humanize }} executions of association %(a)s ended Failed or TimedOut in the last 15 minutes.{{ end }}' % { a: association },
            } + console,
          },
          {
            // An association runs on its schedule: alert when its newest run is older than the
            // longest gap between two runs of its schedule plus a grace of 10% of that gap (at
            // least an hour). The newest run is the listing's LastExecutionDate (known for
            // every listed association, with or without a state file) or the newest polled
            // execution, whichever is newer.
            alert: 'SSMAssociationOverdue',
            expr: named(|||
              (
                time() - max by (%(by)s) ({__name__=~"ssm_association_listed_last_execution_timestamp_seconds|ssm_association_last_execution_timestamp_seconds", %(selector)s})
              )
              > on (%(by)s)
              (
                max by (%(by)s) (ssm_association_schedule_interval_seconds%(sel)s)
                + clamp_min(max by (%(by)s) (ssm_association_schedule_interval_seconds%(sel)s) * 0.1, 3600)
              )
            ||| % { by: by(perAssociation), sel: sel(), selector: c.selector }),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'SSM association %s has not run on schedule' % association,
              description: 'The newest run of association %s was {{ $value | humanizeDuration }} ago, longer than its schedule allows.' % association,
            } + console,
          },
          {
            // Associations without a schedule (run on demand or on a change): no success for
            // 24 hours. Scheduled ones are watched by SSMAssociationOverdue. Needs
            // initial_lookback (or a state file) covering the gap.
            alert: 'SSMAssociationNoRecentSuccess',
            expr: named(|||
              (
                time() - max by (%(by)s) (ssm_association_last_success_timestamp_seconds%(sel)s) > 24 * 3600
              )
              unless on (%(by)s)
              ssm_association_schedule_interval_seconds%(sel)s
            ||| % { by: by(perAssociation), sel: sel() }),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'SSM association %s has not succeeded for 24 hours' % association,
              description: 'The newest successful execution of association %s was created {{ $value | humanizeDuration }} ago.' % association,
            } + console,
          },
          {
            // As SSMAssociationExecutionFailed: fires on a new trigger and lasts while the
            // newest execution triggered the alarm (ssm_association_triggered_alarm), so an
            // association whose every run triggers it does not fire and resolve per run.
            alert: 'SSMAssociationAlarmTriggered',
            expr: named(|||
              (
                %(counted)s
              )
              or
              (
                max by (%(by)s) (ssm_association_triggered_alarm%(last)s) == 1
              ) * 0
            ||| % {
              counted: lib.indent(counted('ssm_association_triggered_alarms_total', 'state="ALARM"', '15m', perAssociation + ['alarm_name']), 2),
              by: by(perAssociation + ['alarm_name']),
              last: sel('state="ALARM"'),
            }),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'SSM association %s triggered CloudWatch alarm {{ $labels.alarm_name }}' % association,
              description: 'Executions of association %s triggered the CloudWatch alarm {{ $labels.alarm_name }} (in the last 15 minutes, or the newest execution did).' % association,
            } + console,
          },
          {
            alert: 'SSMAssociationExecutionsStuckInProgress',
            expr: named('max by (%s) (ssm_association_executions_in_progress%s) > 0' % [by(perAssociation), sel()]),
            'for': '6h',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'SSM association %s has had executions in progress for 6 hours' % association,
              description: 'Association %s has had at least one execution pending or in progress continuously for 6 hours.' % association,
            } + console,
          },
          {
            // Per association with metrics.per_association_internals: true; by default the
            // counter has no association_id (summed over the associations) and the alert names
            // the job only.
            alert: 'SSMAssociationExecutionsAbandoned',
            expr: named(counted('ssm_association_exporter_pending_abandoned_total', '', '1h', perAssociation)),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The exporter gave up on executions of {{ if $labels.association_id }}SSM association %s{{ else }}SSM associations ({{ $labels.job }}){{ end }}' % association,
              description: '{{ $value | humanize }} executions of {{ if $labels.association_id }}association %s{{ else }}the associations of {{ $labels.job }} (the exporter\'s log names them; SSMAssociationExecutionsStuckInProgress fired for them){{ end }} stayed non-final for more than 7 days and are no longer followed; their outcome is not counted.' % association,
              console_url: '{{ if $labels.association_id }}%s{{ else }}https://console.aws.amazon.com/systems-manager/state-manager{{ end }}' % lib.consoleUrl,
            },
          },
          {
            // max: with high availability the association is watched while one of its replicas
            // polls it (one replica failing alone shows in its own logs and
            // ssm_association_exporter_poll_errors_total).
            alert: 'SSMAssociationExporterPollFailing',
            expr: named('max by (%s) (ssm_association_exporter_poll_success%s) == 0' % [by(perAssociation), sel()]),
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter cannot poll association %s' % association,
              description: 'Polls of association %s have failed for 15 minutes; see ssm_association_exporter_poll_errors_total for the error code (AssociationDoesNotExist, AccessDeniedException, ...).' % association,
            } + console,
          },
          {
            alert: 'SSMAssociationExporterStale',
            expr: named('time() - max by (%s) (ssm_association_exporter_last_poll_success_timestamp_seconds%s) > 900' % [by(perAssociation), sel()]),
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter data for %s is stale' % association,
              description: 'The last successful poll of association %s was {{ $value | humanizeDuration }} ago.' % association,
            } + console,
          },
          {
            // One alert per account and region whose credentials SSM or STS rejects (AssumeRole
            // denied, wrong ExternalId, expired or invalid token, access denied to
            // ListAssociations; access denied to one association's calls is that association's
            // PollFailing): that account and region's associations are not polled, the others
            // are. deploy/alertmanager/alertmanager.yml inhibits the alerts it causes for the
            // same job, account_id and region only.
            alert: 'SSMAssociationExporterCredentialsRejected',
            expr: 'min by (%s) (ssm_association_exporter_credentials_valid%s) == 0' % [by(['job', 'account_id', 'region']), sel()],
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'AWS rejects the credentials of ssm-association-exporter ({{ $labels.job }}) for account {{ $labels.account_id }} in {{ $labels.region }}',
              description: 'AWS rejects the exporter\'s credentials for account {{ $labels.account_id }} in {{ $labels.region }} (AssumeRole denied, wrong ExternalId, expired or invalid token, or access denied to ListAssociations): the associations of that account and region are not polled; other accounts and regions are, and /readyz stays 200 unless every one is rejected. Check the member role\'s trust policy and ExternalId (deploy/iam/, deploy/cloudformation/), or IRSA for the exporter\'s own account; ssm_association_exporter_api_requests_total{account_id="{{ $labels.account_id }}",region="{{ $labels.region }}"} has the error code.',
            },
          },
          {
            // The listing (ListAssociations) of an account and region did not read every page
            // for 15 minutes: throttled, unreachable or denied. Its associations are not polled
            // meanwhile.
            alert: 'SSMAssociationExporterListingFailing',
            expr: 'max by (%s) (ssm_association_exporter_listing_success%s) == 0' % [by(['job', 'account_id', 'region']), sel()],
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter ({{ $labels.job }}) cannot list the associations of account {{ $labels.account_id }} in {{ $labels.region }}',
              description: 'ListAssociations of account {{ $labels.account_id }} in {{ $labels.region }} has not read every page for 15 minutes (throttled, endpoint unreachable or access denied): the associations of that account and region are not polled and their series keep their last values. ssm_association_exporter_api_requests_total{account_id="{{ $labels.account_id }}",region="{{ $labels.region }}",operation="ListAssociations"} has the error code.',
            },
          },
          {
            alert: 'SSMAssociationExporterStateNotSaved',
            expr: 'max by (%s) (ssm_association_exporter_state_save_failing%s) == 1' % [by(['job', 'instance']), sel()],
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter {{ $labels.instance }} cannot save its state file',
              description: 'The last writes of the state file failed (ssm_association_exporter_state_save_errors_total, ssm_association_exporter_last_state_save_timestamp_seconds): a restart would lose the counts since the last good save.',
            },
          },
          {
            alert: 'SSMAssociationExporterReloadFailed',
            expr: 'max by (%s) (ssm_association_exporter_config_last_reload_successful%s) == 0' % [by(['job', 'instance']), sel()],
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter {{ $labels.instance }} rejected its new configuration',
              description: 'The last configuration reload failed; the previous configuration keeps running. The exporter\'s log names the file, line, column and key.',
            },
          },
          {
            // An events: queue (issue 22) that keeps failing: errors in the last 10 minutes and
            // no successful receive in the last 2 (a long poll answers at least every 20 s, also
            // when the queue is empty). Polling goes on meanwhile, so nothing is lost, but a
            // run's end shows only at the next listing (5 minutes with events).
            alert: 'SSMAssociationExporterEventQueueFailing',
            expr: |||
              sum by (%(by)s) (increase(ssm_association_exporter_event_queue_errors_total%(sel)s[10m])) > 0
              unless on (%(by)s)
              (time() - max by (%(by)s) (ssm_association_exporter_event_queue_last_receive_timestamp_seconds%(sel)s)) < 120
            ||| % { by: by(['job', 'queue']), sel: sel() },
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter ({{ $labels.job }}) cannot read its events queue {{ $labels.queue }}',
              description: 'Every ReceiveMessage of {{ $labels.queue }} has failed for at least 10 minutes (ssm_association_exporter_event_queue_errors_total has the error code): polling goes on and counts stay exact, but runs are seen at the next listing instead of within seconds.',
            },
          },
          {
            // Events stopped while executions keep coming: the exporter counted executions in
            // the last hour (through its listings, the safety net) but received no event at all
            // (the EventBridge rule, its target or the queue policy is broken, or the events go
            // to another queue). Only where events: is set (the counter exists from 0 then).
            alert: 'SSMAssociationExporterEventsStopped',
            expr: |||
              sum by (%(by)s) (%(executions)s) > 0
              and on (%(by)s)
              sum by (%(by)s) (%(events)s) == 0
            ||| % {
              by: by(['job']),
              executions: dedup('increase(ssm_association_executions_total%s[1h])' % sel()),
              events: dedup('increase(ssm_association_exporter_events_received_total%s[1h])' % sel()),
            },
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter ({{ $labels.job }}) receives no State Manager events while executions keep coming',
              description: 'Executions were counted in the last hour but no event arrived from the events: queues: the EventBridge rule, its target, the queue policy or the routing of member accounts is broken. Counts stay exact (the listing is the safety net); runs are seen minutes later than with events.',
            },
          },
          {
            // The recording rule already selects the exporter's series. Grafana-managed rules
            // get its expression inlined (Grafana does not evaluate recording rules).
            alert: 'SSMAssociationExporterThrottled',
            expr: 'job:ssm_association_exporter_api_throttled_ratio:rate5m > 0.05',
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'ssm-association-exporter is being throttled by the SSM API',
              description: '{{ $value | humanizePercentage }} of SSM API requests are throttled; lower api_requests_per_second or raise poll_interval.',
            },
          },
          {
            // The request budget is the exporter's, not an association's: one alert per job,
            // on the largest delay.
            alert: 'SSMAssociationExporterPollsLate',
            expr: 'max by (%s) (ssm_association_exporter_poll_delay_seconds%s) > 120' % [by(['job']), sel()],
            'for': '15m',
            labels: { severity: 'info' },
            annotations: {
              summary: 'ssm-association-exporter polls start late',
              description: 'Polls of {{ $labels.job }} start up to {{ $value | humanizeDuration }} late: the request budget does not cover every association in one poll interval.',
            },
          },
          {
            // Sharding, as kube-state-metrics' KubeStateMetricsShardingMismatch and
            // KubeStateMetricsShardsMissing. Unsharded, every exporter reports shard 0 of 1.
            alert: 'SSMAssociationExporterShardingMismatch',
            expr: 'stdvar by (%s) (ssm_association_exporter_total_shards%s) != 0' % [by(['job']), sel()],
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The shards of ssm-association-exporter ({{ $labels.job }}) disagree on the shard count',
              description: 'The targets of {{ $labels.job }} report different --total-shards: they split the associations differently, so some associations are watched twice and others not at all.',
            },
          },
          {
            // Bit N of the sum is set when some target reports shard N (label "shard" from the
            // value, by count_values; max over the replicas of a shard): the sum is 2^M - 1
            // when all M are there.
            alert: 'SSMAssociationExporterShardsMissing',
            expr: |||
              2 ^ max by (%(job)s) (ssm_association_exporter_total_shards%(sel)s) - 1
                -
              sum by (%(job)s) (
                2 ^ max by (%(shard)s) (
                  ssm_association_exporter_shard_ordinal%(sel)s
                  * ignoring (shard) group_left (shard)
                  count_values without () ("shard", ssm_association_exporter_shard_ordinal%(sel)s)
                )
              )
              != 0
            ||| % { job: by(['job']), shard: by(['job', 'shard']), sel: sel() },
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Shards of ssm-association-exporter ({{ $labels.job }}) are missing',
              description: 'Not every shard of {{ $labels.job }} (--total-shards) is scraped: the associations of the missing shards are not watched.',
            },
          },
          if c.ha.enabled then {
            // High availability: a shard is down when none of its replicas is up; one replica
            // down alone leaves its twin polling and exporting the shard.
            alert: 'SSMAssociationExporterDown',
            expr: 'max by (%s) (label_replace(up%s, "shard", "$1", "%s", "%s")) == 0' % [
              by(['job', 'shard']),
              sel(),
              c.ha.shardSourceLabel,
              c.ha.shardRegex,
            ],
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'Every replica of shard {{ $labels.shard }} of ssm-association-exporter ({{ $labels.job }}) is down',
              description: 'Prometheus cannot scrape any replica of shard {{ $labels.shard }} of {{ $labels.job }}: its associations are not watched.',
            },
          } else {
            alert: 'SSMAssociationExporterDown',
            expr: 'up%s == 0' % sel(),
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'ssm-association-exporter is down',
              description: 'Prometheus cannot scrape {{ $labels.instance }}.',
            },
          },
          {
            alert: 'SSMAssociationExporterAbsent',
            expr: 'absent(up%s)' % sel(),
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'ssm-association-exporter is not scraped at all',
              description: 'No target matches %s: association failures are not being watched.' % sel(),
            },
          },
        ],
      },
    ],
  },
}
