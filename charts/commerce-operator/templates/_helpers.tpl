{{- define "commerce-operator.labels" -}}
app.kubernetes.io/name: commerce-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: commerce
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- /* The namespaces the operator watches unless clusterWide, as a JSON list: watchNamespaces,
else the release's own. */ -}}
{{- define "commerce-operator.namespaces" -}}
{{- .Values.watchNamespaces | default (list .Release.Namespace) | toJson }}
{{- end -}}

{{- define "commerce-operator.selector" -}}
app.kubernetes.io/name: commerce-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
