// The dashboard: the panels' layout and display (panels.json, as Grafana saves them) with their
// queries (below, by panel id). Association series are taken once across the replicas of a
// shard (high availability) before any sum; the exporter's own series (API requests, process)
// are per replica, as each replica makes its own calls. Variables: cluster, job, instance,
// account, region, and the association picker, which shows names (ssm_association_info).
local lib = import '../lib.libsonnet';
local panels = import 'panels.json';

{
  grafanaDashboards+:: {
    local c = $._config,
    local d = c.dashboard,
    local dedup = function(expr) lib.dedup(c, expr),
    local base = '%s=~"$cluster", job=~"$job", instance=~"$instance"' % d.clusterLabel,
    local scope = base + ', account_id=~"$account_id", region=~"$region"',
    // Per-association series.
    local assoc = '{%s, association_id=~"$association_id"}' % scope,
    local withStatus = function(matcher) '{%s, association_id=~"$association_id", %s}' % [scope, matcher],
    // The exporter's per-association internals: without association_id (and account, region)
    // unless metrics.per_association_internals is set.
    local internals = '{%s, account_id=~"$account_id|", region=~"$region|", association_id=~"$association_id|"}' % base,
    // Recording rules keep cluster, job, account and region, not instance (deduplicated).
    local recorded = '{%s=~"$cluster", job=~"$job", account_id=~"$account_id", region=~"$region", association_id=~"$association_id"}' % d.clusterLabel,
    local own = '{%s}' % base,
    local info = 'ssm_association_info{%s}' % scope,
    local named = function(expr)
      '(%s) * on (association_id) group_left (association_name, region) max by (association_id, association_name, region) (%s)\nor on (association_id)\n(%s)' % [expr, info, expr],
    local allAssociations = function(expr)
      'label_replace(%s, "association_id", "all associations", "association_id", "")' % expr,
    local executions = 'ssm_association_executions_total',
    local failed = 'status=~"Failed|TimedOut"',
    local ratio1h =
      'sum by (association_id) (%s) / clamp_min(sum by (association_id) (%s), 1)' % [
        dedup('increase(%s%s[1h])' % [executions, withStatus(failed)]),
        dedup('increase(%s%s[1h])' % [executions, assoc]),
      ],
    local quantile = function(q, by, window)
      'histogram_quantile(%s, sum by (%s) (%s))' % [q, by, dedup('rate(ssm_association_execution_duration_seconds_bucket%s[%s])' % [assoc, window])],
    local newestRun = '{__name__=~"ssm_association_listed_last_execution_timestamp_seconds|ssm_association_last_execution_timestamp_seconds", %s, association_id=~"$association_id"}' % scope,

    local queries = {
      '2': ['count(max by (association_id) (ssm_association_exporter_poll_success%s))' % internals],
      '3': ['sum(%s)' % dedup('increase(%s%s[$__range])' % [executions, assoc])],
      '4': ['sum(%s)' % dedup('increase(%s%s[$__range])' % [executions, withStatus(failed)])],
      '5': ['count(max by (association_id) (ssm_association_last_execution_status%s) == 1) or vector(0)' % withStatus(failed)],
      '6': ['sum(%s)' % dedup('ssm_association_executions_in_progress%s' % assoc)],
      '7': ['min(up%s)' % own],
      '9': ['sum by (status) (%s)' % dedup('increase(%s%s[$__rate_interval])' % [executions, assoc])],
      '10': ['sum by (status) (association_id_status:ssm_association_executions:increase1h%s)' % recorded],
      '11': [named('max by (association_id) (association_id:ssm_association_executions_failure_ratio:1d%s)' % recorded)],
      '12': [named(ratio1h)],
      '13': [quantile('0.5', 'le', '1h'), quantile('0.9', 'le', '1h'), quantile('0.99', 'le', '1h')],
      '14': [named(quantile('0.9', 'association_id, le', '6h'))],
      '15': [named('sum by (association_id) (%s)' % dedup('ssm_association_executions_in_progress%s' % assoc))],
      '16': [
        named('sum by (association_id) (%s)' % dedup('increase(ssm_association_executions_without_end_time_total%s[$__rate_interval])' % assoc)),
        named(allAssociations('sum by (association_id) (%s)' % dedup('increase(ssm_association_exporter_pending_abandoned_total%s[$__rate_interval])' % internals))),
      ],
      '18': [named('time() - max by (association_id) (ssm_association_last_success_timestamp_seconds%s)' % assoc)],
      '19': [named('max by (association_id, status) (ssm_association_last_execution_resources%s)' % assoc)],
      '20': [
        'max by (association_id, association_name, document_name, schedule_expression, region) (ssm_association_info{%s, association_id=~"$association_id"})' % scope,
        'max by (association_id, status) (ssm_association_last_execution_status%s == 1)' % assoc,
        'time() - max by (association_id) (%s)' % newestRun,
        'time() - max by (association_id) (ssm_association_last_success_timestamp_seconds%s)' % assoc,
      ],
      '22': [named('max by (association_id, alarm_name, state) (ssm_association_triggered_alarm%s)' % assoc)],
      '23': [named('sum by (association_id, alarm_name, state) (%s)' % dedup('increase(ssm_association_triggered_alarms_total%s[$__rate_interval])' % assoc))],
      '25': [named('min by (association_id) (ssm_association_exporter_poll_success%s)' % internals)],
      '26': [
        'max by (instance, version, revision) (ssm_association_exporter_build_info%s)' % own,
        'max by (instance) (up%s)' % own,
        'time() - max by (instance) (process_start_time_seconds%s)' % own,
      ],
      '27': [named('time() - max by (association_id) (ssm_association_exporter_last_poll_success_timestamp_seconds%s)' % internals)],
      '28': [named(allAssociations('max by (association_id) (ssm_association_exporter_poll_delay_seconds%s)' % internals))],
      '29': [named(allAssociations('sum by (association_id, code) (%s)' % dedup('increase(ssm_association_exporter_poll_errors_total%s[$__rate_interval])' % internals)))],
      '30': ['sum by (operation, code) (rate(ssm_association_exporter_api_requests_total%s[$__rate_interval]))' % own],
      '31': ['job:ssm_association_exporter_api_throttled_ratio:rate5m{%s=~"$cluster", job=~"$job"}\nor\n0 * sum by (job) (rate(ssm_association_exporter_api_requests_total%s[5m]))' % [d.clusterLabel, own]],
      '32': [
        'histogram_quantile(0.99, sum by (operation, le) (rate(ssm_association_exporter_api_request_duration_seconds_bucket%s[$__rate_interval])))' % own,
        'histogram_quantile(0.5, sum by (operation, le) (rate(ssm_association_exporter_api_request_duration_seconds_bucket%s[$__rate_interval])))' % own,
      ],
      '33': ['sum by (instance) (rate(ssm_association_exporter_rate_limit_wait_seconds_total%s[$__rate_interval]))' % own],
      '34': ['process_resident_memory_bytes%s' % own],
      '35': ['rate(process_cpu_seconds_total%s[$__rate_interval])' % own],
    },

    local datasource = { type: 'prometheus', uid: '${datasource}' },
    local withQueries = function(panel)
      if std.objectHas(panel, 'targets') then
        local exprs = queries[std.toString(panel.id)];
        assert std.length(exprs) == std.length(panel.targets) : 'panel %d: %d queries for %d targets' % [panel.id, std.length(exprs), std.length(panel.targets)];
        panel {
          targets: [
            { datasource: datasource, editorMode: 'code', expr: exprs[i] } + panel.targets[i]
            for i in std.range(0, std.length(exprs) - 1)
          ],
        }
      else panel,

    local variable = function(name, label, query, description, extra={}) {
      allValue: '.*',
      current: { selected: true, text: ['All'], value: ['$__all'] },
      datasource: datasource,
      definition: query,
      description: description,
      hide: 0,
      includeAll: true,
      label: label,
      multi: true,
      name: name,
      options: [],
      query: { qryType: 1, query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
      refresh: 2,
      regex: '',
      skipUrlSync: false,
      sort: 1,
      type: 'query',
    } + extra,

    'ssm-associations.json': {
      annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
      description: "AWS SSM State Manager association executions from ssm-association-exporter: outcomes, failure ratios, durations, triggered CloudWatch alarms and the exporter's own health.",
      editable: true,
      fiscalYearStartMonth: 0,
      graphTooltip: 1,
      id: null,
      links: [{ title: 'Runbooks', url: c.runbookBaseUrl, type: 'link', targetBlank: true, icon: 'doc', tooltip: 'What to do for each alert' }],
      panels: [withQueries(p) for p in panels],
      refresh: '30s',
      schemaVersion: 39,
      tags: ['aws', 'ssm', 'state-manager', 'ssm-association-exporter'],
      templating: {
        list: [
          { current: {}, hide: 0, includeAll: false, label: 'Data source', multi: false, name: 'datasource', options: [], query: 'prometheus', refresh: 1, regex: '', skipUrlSync: false, type: 'datasource' },
          variable('cluster', 'Cluster', 'label_values(ssm_association_exporter_build_info, %s)' % d.clusterLabel, 'Clusters (label %s; empty when Prometheus sees one).' % d.clusterLabel, { refresh: 1 }),
          variable('job', 'Job', 'label_values(ssm_association_exporter_build_info{%s=~"$cluster"}, job)' % d.clusterLabel, 'Scrape jobs of the exporter (multi-select).', { refresh: 1 }),
          variable('instance', 'Instance', 'label_values(ssm_association_exporter_build_info{%s=~"$cluster", job=~"$job"}, instance)' % d.clusterLabel, 'Exporter instances (pods, tasks) of the selected jobs (multi-select).'),
          variable('account_id', 'Account', 'label_values(ssm_association_info{%s}, account_id)' % base, 'AWS accounts of the associations (multi-select).'),
          variable('region', 'Region', 'label_values(ssm_association_info{%s, account_id=~"$account_id"}, region)' % base, 'AWS regions of the associations (multi-select).'),
          // Shows each association's name (its ID when it has none), selects by ID. The
          // query_result lines read {association_id="...",association_name="..."} 1 <time>.
          variable(
            'association_id',
            'Association',
            'query_result(max by (association_id, association_name) (ssm_association_info{%s}))' % scope,
            'Associations of the selected accounts and regions, by name (multi-select).',
            {
              regex: '/association_id="(?<value>[^"]+)"(?:,\\s*association_name="(?<text>[^"]+)")?/',
              // The variable editor's "Query result" type.
              query+: { qryType: 3 },
            },
          ),
        ],
      },
      time: { from: 'now-6h', to: 'now' },
      timepicker: {},
      timezone: '',
      title: d.title,
      uid: d.uid,
      version: 1,
      weekStart: '',
    },
  },
}
