{{- define "commerce-operator.own-kind-rules" -}}
# Kopf watches the kinds it handles and patches them for its finalizers and annotations.
- apiGroups: [commerce.io]
  resources: [commerceservices, outboxconnectors, catalogindexes]
  verbs: [get, list, watch, patch]
- apiGroups: [commerce.io]
  resources: [commerceservices/status, outboxconnectors/status, catalogindexes/status]
  verbs: [patch]
{{- end -}}

{{- define "commerce-operator.rules" -}}
{{ include "commerce-operator.own-kind-rules" . }}
# Owned objects (a CommerceService's, a CatalogIndex's sync worker), written by server-side
# apply (create + patch) only when they differ from the spec; GC deletes them with their owner.
# Watched (list, watch): the reconcilers read them from the watch, and an edit or deletion
# brings their owner's reconcile at once.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, list, watch, create, patch]
# Each CommerceService's NetworkPolicy: its gRPC port open to the services that bind it only.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
# Optional objects are deleted when the spec stops asking for them.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# The Secrets that bindings and a CatalogIndex's sources name are watched: the operator keeps
# their keys and resourceVersion (a created or rotated Secret reconciles its binders at once),
# never their values; values reach the workloads only as secretKeyRef. get: an
# OutboxConnector's credentials in literal mode (development only).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
