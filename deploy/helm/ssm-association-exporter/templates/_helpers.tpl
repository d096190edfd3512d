{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "ssm-association-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart name unless it contains it. */}}
{{- define "ssm-association-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ssm-association-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ssm-association-exporter.labels" -}}
helm.sh/chart: {{ include "ssm-association-exporter.chart" . }}
{{ include "ssm-association-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "ssm-association-exporter.name" . }}
{{- end }}

{{- define "ssm-association-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssm-association-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ssm-association-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ssm-association-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ssm-association-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding static AWS keys, if any. */}}
{{- define "ssm-association-exporter.awsSecretName" -}}
{{- if .Values.aws.existingSecret }}
{{- .Values.aws.existingSecret }}
{{- else if and .Values.aws.accessKeyId .Values.aws.secretAccessKey }}
{{- printf "%s-aws" (include "ssm-association-exporter.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret holding the web configuration, if any. */}}
{{- define "ssm-association-exporter.webConfigSecretName" -}}
{{- if .Values.webConfig.existingSecret }}
{{- .Values.webConfig.existingSecret }}
{{- else if .Values.webConfig.content }}
{{- printf "%s-web-config" (include "ssm-association-exporter.fullname" .) }}
{{- end }}
{{- end }}

{{/* The placeholder association IDs of values.yaml's config, as JSON. */}}
{{- define "ssm-association-exporter.placeholderAssociations" -}}
["8dfe3659-4309-493a-8755-0123456789ab","0b1f2e3d-4c5b-4a69-8877-66554433aabb"]
{{- end }}

{{/* The exporter's config: values.config, with state_file where the state volume is. Helm
merges a user's config into the defaults, so a config with only `discovery` would keep the
placeholder IDs of values.yaml: they are dropped when discovery is set. */}}
{{- define "ssm-association-exporter.config" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- if and $config.discovery (eq (toJson $config.associations) (include "ssm-association-exporter.placeholderAssociations" .)) }}
{{- $_ := unset $config "associations" }}
{{- end }}
{{- if and (not $config.associations) (not $config.discovery) }}
{{- fail "config needs associations (a list of IDs), discovery (selectors) or both" }}
{{- end }}
{{- if hasKey $config "state_file" }}
{{- fail "config.state_file is set by the chart: use state.enabled / persistence.enabled" }}
{{- end }}
{{- $queues := (default dict .Values.events).queues }}
{{- if $queues }}
{{- if hasKey $config "events" }}
{{- fail "events.queues and config.events both name queues: set one of them" }}
{{- end }}
{{- $events := dict "queues" $queues }}
{{- with .Values.events.progress_poll_delay }}
{{- $_ := set $events "progress_poll_delay" . }}
{{- end }}
{{- $_ := set $config "events" $events }}
{{- end }}
{{- if or .Values.state.enabled .Values.persistence.enabled }}
{{- $_ := set $config "state_file" "/var/lib/ssm-association-exporter/state.json" }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* http or https: how the probes, the helm test pod and the ServiceMonitor reach the exporter. */}}
{{- define "ssm-association-exporter.scheme" -}}
{{- if .Values.webConfig.scheme }}
{{- .Values.webConfig.scheme }}
{{- else if and (not .Values.webConfig.existingSecret) (get (default dict .Values.webConfig.content) "tls_server_config") }}
{{- "https" }}
{{- else }}
{{- "http" }}
{{- end }}
{{- end }}
