{{- define "commerce-operator.rules" -}}
# Kopf watches the kinds it handles and patches them for its finalizers and annotations.
- apiGroups: [commerce.io]
  resources: [commerceservices, outboxconnectors, catalogindexes]
  verbs: [get, list, watch, patch]
- apiGroups: [commerce.io]
  resources: [commerceservices/status, outboxconnectors/status, catalogindexes/status]
  verbs: [patch]
# Owned objects (a CommerceService's, a CatalogIndex's sync worker), written by server-side
# apply (create + patch); GC deletes them with their owner. The watch follows their rollouts.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, create, patch]
# Optional objects are deleted when the spec stops asking for them.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
# Bindings and a CatalogIndex's source Secrets are read by name (keys and resourceVersion only);
# values never leave the Secret except as secretKeyRef.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
