{{/* Names, labels and the few derived values every template shares. */}}

{{- define "reconciler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reconciler.fullname" -}}
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

{{- define "reconciler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reconciler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "reconciler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "reconciler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: reconciler
{{- end }}

{{- define "reconciler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reconciler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "reconciler.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The claim of the SQLite data directory, or "" when the data directory is an emptyDir. */}}
{{- define "reconciler.dataClaim" -}}
{{- if and (eq .Values.store.type "sqlite") .Values.store.sqlite.persistence.enabled }}
{{- default (printf "%s-data" (include "reconciler.fullname" .)) .Values.store.sqlite.persistence.existingClaim }}
{{- end }}
{{- end }}

{{/* Whether the pod needs its service-account token: only Vault's Kubernetes auth uses it. */}}
{{- define "reconciler.vaultKubernetesAuth" -}}
{{- if and .Values.vault.enabled (eq .Values.vault.authMethod "kubernetes") }}true{{- end }}
{{- end }}

{{/* The repository's URL; an install or upgrade without one fails with a message naming
repo.url. `helm lint` (neither an install nor an upgrade) renders a placeholder, so the chart
lints with its default values as chart-testing does. */}}
{{- define "reconciler.repoUrl" -}}
{{- if .Values.repo.url }}
{{- .Values.repo.url }}
{{- else if or .Release.IsInstall .Release.IsUpgrade }}
{{- fail "repo.url is required: the https://, ssh:// or git@host:path URL of the repository holding the workflows" }}
{{- else -}}
https://git.example.invalid/set-repo-url.git
{{- end }}
{{- end }}

{{/* "true" when the operator gave a CA bundle (a ConfigMap or a Secret), else "". */}}
{{- define "reconciler.caBundle" -}}
{{- if or .Values.caBundle.configMap .Values.caBundle.secret }}true{{- end }}
{{- end }}
