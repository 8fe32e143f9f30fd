{{- define "commerce-operator.labels" -}}
app.kubernetes.io/name: commerce-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: commerce
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "commerce-operator.selector" -}}
app.kubernetes.io/name: commerce-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
