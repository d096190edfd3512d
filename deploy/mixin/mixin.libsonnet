// ssm-association-exporter's monitoring mixin: the one source of its alerts, recording rules,
// dashboard and Grafana-managed rules. Knobs: config.libsonnet (`_config`). Outputs, as any
// mixin: prometheusAlerts, prometheusRules, grafanaDashboards; and grafanaAlerts (Grafana file
// provisioning). scripts/render-mixin renders the shipped files from it.
local base = (import 'config.libsonnet')
             + (import 'rules.libsonnet')
             + (import 'alerts.libsonnet')
             + (import 'dashboards/dashboard.libsonnet');

base + {
  local c = self._config,
  local tune = function(rule)
    local wanted = std.get(c.alerts, rule.alert, {});
    rule {
      labels: rule.labels
              + (if std.objectHas(wanted, 'severity') then { severity: wanted.severity } else {})
              + c.extraLabels
              + std.get(wanted, 'labels', {}),
      annotations: rule.annotations {
        runbook_url: '%s#%s' % [c.runbookBaseUrl, std.asciiLower(rule.alert)],
      },
    },
  local enabled = function(rule) std.get(std.get(c.alerts, rule.alert, {}), 'enabled', true),

  prometheusAlerts+:: {
    groups: [
      group { rules: [tune(r) for r in group.rules if enabled(r)] }
      for group in super.groups
    ],
  },

  // Grafana-managed rules: each alert's query (recording rules inlined: Grafana does not
  // evaluate them), its last value, and a condition true for every series the query returns
  // (as in Prometheus, which alerts on every series its expression returns).
  local records = {
    [r.record]: std.rstripChars(r.expr, '\n')
    for g in $.prometheusRules.groups
    for r in g.rules
  },
  local inline = function(expr)
    std.foldl(function(e, name) std.strReplace(e, name, '(%s)' % records[name]), std.objectFields(records), expr),
  local isUpper = function(ch) std.asciiLower(ch) != ch,
  local kebab = function(name) std.join('', [
    (if i > 0 && !isUpper(name[i - 1]) && isUpper(name[i]) then '-' else '') + std.asciiLower(name[i])
    for i in std.range(0, std.length(name) - 1)
  ]),
  local uid = function(name)
    local k = kebab(name);
    'ssm-' + (if std.startsWith(k, 'ssmassociation-') then k[std.length('ssmassociation-'):] else k),
  grafanaAlerts:: {
    apiVersion: 1,
    groups: [{
      orgId: 1,
      name: c.grafana.group,
      folder: c.grafana.folder,
      interval: '1m',
      rules: [
        {
          uid: uid(rule.alert),
          title: rule.alert,
          condition: 'C',
          data: [
            {
              refId: 'A',
              relativeTimeRange: { from: 900, to: 0 },
              datasourceUid: c.grafana.datasourceUid,
              model: {
                datasource: { type: 'prometheus', uid: c.grafana.datasourceUid },
                editorMode: 'code',
                expr: std.rstripChars(inline(rule.expr), '\n'),
                instant: true,
                range: false,
                intervalMs: 60000,
                maxDataPoints: 43200,
                legendFormat: '__auto',
                refId: 'A',
              },
            },
            {
              refId: 'B',
              datasourceUid: '__expr__',
              model: {
                datasource: { type: '__expr__', uid: '__expr__' },
                expression: 'A',
                reducer: 'last',
                type: 'reduce',
                refId: 'B',
              },
            },
            {
              refId: 'C',
              datasourceUid: '__expr__',
              model: {
                datasource: { type: '__expr__', uid: '__expr__' },
                expression: '$B == $B',
                type: 'math',
                refId: 'C',
              },
            },
          ],
          // No series is no alert, as in Prometheus (absent() returns one when it should).
          noDataState: 'OK',
          execErrState: 'Error',
          'for': std.get(rule, 'for', '0s'),
          // Prometheus' $value is the value of query A here, reduced to its last value (B).
          annotations: { [k]: std.strReplace(rule.annotations[k], '$value', '$values.B.Value') for k in std.objectFields(rule.annotations) },
          labels: rule.labels,
          isPaused: false,
        }
        for g in $.prometheusAlerts.groups
        for rule in g.rules
      ],
    }],
  },
}
