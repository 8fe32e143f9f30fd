{{- define "commerce-operator.labels" -}}
app.kubernetes.io/name: commerce-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: commerce
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- /* The namespaces the operator watches, as a JSON list: watchNamespaces, else the release's
own; none when clusterWide (every namespace). */ -}}
{{- define "commerce-operator.namespaces" -}}
{{- if .Values.clusterWide }}[]{{ else }}{{ .Values.watchNamespaces | default (list .Release.Namespace) | toJson }}{{ end }}
{{- end -}}

{{- define "commerce-operator.selector" -}}
app.kubernetes.io/name: commerce-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
