// PromQL building blocks shared by the rules, the alerts and the dashboard.
{
  // `labels` after the labels every aggregation keeps, as the inside of by (...).
  by(c, labels):: std.join(', ', c.groupLabels + labels),

  // The exporter's series: `{<selector>, <extra>}`.
  sel(c, extra=''):: '{' + std.join(', ', std.filter(function(s) s != '', [c.selector, extra])) + '}',

  // One value per series across the replicas of a shard (they differ only in these labels).
  dedup(c, expr):: 'max without (%s) (%s)' % [std.join(', ', c.haDedupLabels), expr],

  // `text` with every line but the first indented by `n` spaces.
  indent(text, n)::
    local pad = std.repeat(' ', n);
    local lines = std.split(std.rstripChars(text, '\n'), '\n');
    std.join('\n' + pad, lines),

  // A per-association expression joined with ssm_association_info for the association's name,
  // account and region; the alert still fires, by ID, when the info series is missing.
  named(c, expr)::
    local on = std.join(', ', c.groupLabels + ['association_id']);
    |||
      (
        %(expr)s
      )
      * on (%(on)s) group_left (association_name, account_id, region) topk by (%(on)s) (1, max by (%(on)s, association_name, account_id, region) (ssm_association_info%(sel)s))
      or on (%(on)s)
      (
        %(expr)s
      )
    ||| % { expr: $.indent(expr, 2), on: on, sel: $.sel(c) },

  // An association as the annotations name it: "name (id)", or the ID without a name.
  association:: '{{ with $labels.association_name }}{{ . }} ({{ $labels.association_id }}){{ else }}{{ $labels.association_id }}{{ end }}',

  // The association's page in the AWS console.
  consoleUrl:: '{{ with $labels.region }}https://{{ . }}.console.aws.amazon.com/systems-manager/state-manager/{{ $labels.association_id }}/description?region={{ . }}{{ else }}https://console.aws.amazon.com/systems-manager/state-manager/{{ $labels.association_id }}/description{{ end }}',
}
