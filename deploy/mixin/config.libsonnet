// The knobs of the mixin. Override any of them:
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="ssm"', groupLabels: ['cluster'] } }
// scripts/render-mixin renders the shipped files with these defaults (and the Helm chart's copy
// with placeholders the chart fills from its values).
{
  _config+:: {
    // PromQL label matchers that select the exporter's series, in every rule: the scrape job
    // (the chart's ServiceMonitor names it after the chart, app.kubernetes.io/name).
    selector: 'job="ssm-association-exporter"',
    // Labels every aggregation keeps, so that alerts route by them and a central ruler does
    // not merge clusters: absent labels cost nothing.
    groupLabels: ['cluster', 'namespace'],
    // Labels in which the replicas of a shard differ (high availability: two pods export the
    // same counters); rules and panels take one value across them before summing.
    haDedupLabels: ['instance', 'pod'],
    // High availability (every shard exported by two replicas): SSMAssociationExporterDown
    // fires when no replica of a shard is up, the shard taken from `shardSourceLabel` with
    // `shardRegex` (the chart's StatefulSets name pods <name>-a-<shard>, <name>-b-<shard>).
    ha: {
      enabled: false,
      shardSourceLabel: 'pod',
      shardRegex: '.+-([0-9]+)',
    },
    // Each alert's runbook_url is this plus "#" and the alert's name in lower case.
    runbookBaseUrl: 'https://github.com/example/ssm-association-exporter/blob/main/docs/runbooks.md',
    // Labels added to every alert.
    extraLabels: {},
    // Per alert, by name: { enabled: false } drops it, severity replaces its severity, labels
    // are added, e.g. { SSMAssociationExporterPollsLate: { enabled: false } }.
    alerts: {},
    // Grafana-managed rules (deploy/grafana/provisioning/alerting/).
    grafana: {
      datasourceUid: 'prometheus',
      folder: 'SSM associations',
      group: 'ssm-association-exporter',
    },
    dashboard: {
      uid: 'ssm-association-exporter',
      title: 'SSM State Manager associations',
      // The label that tells clusters apart (the $cluster variable).
      clusterLabel: 'cluster',
    },
  },
}
