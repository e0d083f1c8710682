{{/* Names, labels and checks shared by every template. */}}

{{- define "flywheel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name alone when it already contains the chart name. */}}
{{- define "flywheel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "flywheel.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>" within the 63 characters of a label value or DNS label, for any
     release name: the full name is cut to make room for the suffix. Takes root and suffix. */}}
{{- define "flywheel.suffixedName" -}}
{{- $room := sub 62 (len .suffix) | int -}}
{{- printf "%s-%s" (include "flywheel.fullname" .root | trunc $room | trimSuffix "-") .suffix -}}
{{- end -}}

{{- define "flywheel.operatorName" -}}
{{- include "flywheel.suffixedName" (dict "root" . "suffix" "operator") -}}
{{- end -}}

{{/* The leader-election Lease in the release namespace: named after the release, so two releases
     in one namespace never share a leader. */}}
{{- define "flywheel.leaseName" -}}
{{- include "flywheel.operatorName" . -}}
{{- end -}}

{{/* The upload Job's and the helm test pods' account: KFP calls only, no IAM role. */}}
{{- define "flywheel.kfpClientServiceAccountName" -}}
{{- include "flywheel.suffixedName" (dict "root" . "suffix" "kfp-client") -}}
{{- end -}}

{{- define "flywheel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flywheel.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flywheel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "flywheel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flywheel
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "flywheel.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "flywheel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: retraining-operator
{{- end -}}

{{- define "flywheel.operatorLabels" -}}
{{ include "flywheel.labels" . }}
app.kubernetes.io/component: retraining-operator
{{- end -}}

{{- define "flywheel.image" -}}
{{- with .Values.operator.image -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where the Pipeline and PipelineVersion resources live: the namespace KFP reads them from. */}}
{{- define "flywheel.pipelinesNamespace" -}}
{{- .Values.kfp.namespace -}}
{{- end -}}

{{/*
The compiled pipelines from files/pipelines/, as a YAML list of {pipeline, versions}: versions
newest first, cut to pipelines.keepVersions. `flywheel compile` writes one file per pipeline,
its documents separated by lines that are exactly "---".
*/}}
{{- define "flywheel.pipelines" -}}
{{- $keep := int .Values.pipelines.keepVersions -}}
{{- range $path, $_ := .Files.Glob "files/pipelines/*.yaml" }}
{{- $docs := list }}
{{- range regexSplit "(?m)^---$" ($.Files.Get $path) -1 }}
{{- if trim . }}{{ $docs = append $docs (fromYaml .) }}{{ end }}
{{- end }}
{{- $pipeline := first $docs }}
{{- if ne (get $pipeline "kind") "Pipeline" }}
{{- fail (printf "%s must start with a Pipeline; run `flywheel compile`" $path) }}
{{- end }}
{{- $versions := rest $docs }}
- pipeline: {{ toJson $pipeline }}
  versions: {{ toJson (slice $versions 0 (min $keep (len $versions))) }}
{{- end }}
{{- end -}}

{{/* Argo CD: create after the named wave, and do not fail the dry run while a CRD is missing. */}}
{{- define "flywheel.argocdAnnotations" -}}
argocd.argoproj.io/sync-wave: {{ . | quote }}
argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true
{{- end -}}

{{/* Input checks that a JSON schema cannot express, with messages that name the value; shapes,
     names and each policy's spec are values.schema.json's. */}}
{{- define "flywheel.validate" -}}
{{- if and .Values.irsa.enabled (not .Values.serviceAccount.create) -}}
{{- fail (printf "irsa.enabled needs serviceAccount.create=true: the chart annotates only the account it creates; annotate %q with eks.amazonaws.com/role-arn yourself and set irsa.enabled=false" (toString .Values.serviceAccount.name)) -}}
{{- end -}}
{{- if and .Values.irsa.enabled (not .Values.irsa.roleArn) -}}
{{- fail "irsa.roleArn is required when irsa.enabled is true: set it to the operator's IAM role ARN (arn:aws:iam::<account>:role/<name>), or set irsa.enabled=false" -}}
{{- end -}}
{{- if and .Values.kfp.multiUser (eq .Values.kfp.namespace "kubeflow") -}}
{{- fail "kfp.multiUser=true needs kfp.namespace set to the Kubeflow profile namespace the pipelines and runs belong to (e.g. kubeflow-user-example-com), not KFP's own \"kubeflow\": the chart grants the operator and the upload Job their KFP rights there" -}}
{{- end -}}
{{- range $field := list "cpu" "memory" -}}
{{- $request := get $.Values.operator.resources.requests $field -}}
{{- $limit := get $.Values.operator.resources.limits $field -}}
{{- if and (not (kindIs "invalid" $request)) (not (kindIs "invalid" $limit)) -}}
{{- if gt (include "flywheel.quantity" $request | float64) (include "flywheel.quantity" $limit | float64) -}}
{{- fail (printf "operator.resources.requests.%s (%v) is above operator.resources.limits.%s (%v): the API server refuses a request above its limit" $field $request $field $limit) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.pipelines.mode (list "kubernetes" "api" "none")) -}}
{{- fail (printf "pipelines.mode must be \"kubernetes\", \"api\" or \"none\", not %q" (toString .Values.pipelines.mode)) -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $index, $policy := .Values.policies -}}
{{- if hasKey $seen $policy.name -}}
{{- fail (printf "policies[%d].name %q is already used by policies[%d]; policy names must be unique" $index $policy.name (get $seen $policy.name)) -}}
{{- end -}}
{{- $_ := set $seen $policy.name $index -}}
{{- end -}}
{{- end -}}

{{/* A Kubernetes quantity (values.schema.json has checked its form) as a plain number, to compare
     a request with its limit: "100m" is 0.1, "1Gi" 1073741824, "1e3" 1000. */}}
{{- define "flywheel.quantity" -}}
{{- $text := toString . -}}
{{- $number := regexFind "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" $text -}}
{{- $suffix := trimPrefix $number $text -}}
{{- if regexMatch "^[eE][-+]?[0-9.]" $suffix -}}
{{- float64 $text -}}
{{- else -}}
{{- $scales := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- mulf (float64 $number) (get $scales $suffix) -}}
{{- end -}}
{{- end -}}

{{/* Every pod of the chart runs non-root with the runtime's default seccomp profile. */}}
{{- define "flywheel.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Every container: read-only root filesystem, no privilege escalation, no capabilities. */}}
{{- define "flywheel.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The projected token KFP's API server accepts (kfp.client.ServiceAccountTokenVolumeCredentials),
     and a scratch /tmp, since the root filesystem is read-only. */}}
{{- define "flywheel.kfpClientVolumes" -}}
- name: kfp-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: pipelines.kubeflow.org
          expirationSeconds: 7200
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "flywheel.kfpClientVolumeMounts" -}}
- name: kfp-token
  mountPath: /var/run/secrets/kubeflow/pipelines
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
Pod spec of a one-shot `python -m flywheel.pipelines.register` against KFP: the upload Job, and the
`helm test` that checks the pipelines are registered. Takes root, extra args and a container name.
*/}}
{{- define "flywheel.registerPod" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "flywheel.kfpClientServiceAccountName" $root }}
# Only the projected KFP token below is mounted; this pod does not call the Kubernetes API.
automountServiceAccountToken: false
securityContext:
  {{- include "flywheel.podSecurityContext" $root | nindent 2 }}
{{- with $root.Values.operator.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ .name }}
    image: {{ include "flywheel.image" $root }}
    imagePullPolicy: {{ $root.Values.operator.image.pullPolicy }}
    command: ["python", "-m", "flywheel.pipelines.register", "--endpoint", {{ $root.Values.kfp.endpoint | quote }}]
    args:
      {{- range .args }}
      - {{ . | quote }}
      {{- end }}
      {{- if $root.Values.kfp.multiUser }}
      - --namespace={{ $root.Values.kfp.namespace }}
      {{- end }}
      {{- range (include "flywheel.pipelines" $root | fromYamlArray) }}
      - /etc/flywheel/pipelines/{{ .pipeline.metadata.name }}.yaml
      {{- end }}
    resources:
      requests:
        cpu: 50m
        memory: 128Mi
      limits:
        cpu: 500m
        memory: 256Mi
    securityContext:
      {{- include "flywheel.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      {{- include "flywheel.kfpClientVolumeMounts" $root | nindent 6 }}
      - name: pipelines
        mountPath: /etc/flywheel/pipelines
        readOnly: true
volumes:
  {{- include "flywheel.kfpClientVolumes" $root | nindent 2 }}
  - name: pipelines
    configMap:
      name: {{ include "flywheel.pipelinesConfigMap" $root }}
{{- end -}}

{{- define "flywheel.pinnedVersionsConfigMap" -}}
{{- include "flywheel.suffixedName" (dict "root" . "suffix" "pipeline-versions") -}}
{{- end -}}

{{- define "flywheel.pipelinesConfigMap" -}}
{{- include "flywheel.suffixedName" (dict "root" . "suffix" "pipelines") -}}
{{- end -}}

{{/*
checkov (`checkov --framework kubernetes`) skips, each with its reason, as annotations of a
workload. Takes root and the extra "CHECK=reason" entries of that workload.
*/}}
{{- define "flywheel.checkovSkips" -}}
{{- $skips := list "CKV_K8S_15=IfNotPresent with a pinned tag or digest; Always makes every restart depend on the registry" -}}
{{- if not .root.Values.operator.image.digest -}}
{{- $skips = append $skips "CKV_K8S_43=pinned by tag by default; set operator.image.digest to pin the digest" -}}
{{- end -}}
{{- range $index, $skip := concat $skips .extra }}
checkov.io/skip{{ add1 $index }}: {{ $skip | quote }}
{{- end }}
{{- end -}}

{{- define "flywheel.checkovRunToCompletion" -}}
- "CKV_K8S_8=a run-to-completion pod serves nothing a liveness probe could check"
- "CKV_K8S_9=a run-to-completion pod serves nothing a readiness probe could check"
{{- end -}}

{{/* RBAC rules of the operator in the namespaces it serves, cluster-wide or not. */}}
{{- define "flywheel.policyRules" -}}
# The policies and model deployments it reconciles, and their status it writes (with a finalizer, hence patch).
- apiGroups: ["flywheel.dev"]
  resources: ["retrainpolicies", "modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["flywheel.dev"]
  resources: ["retrainpolicies/status", "modeldeployments/status"]
  verbs: ["patch"]
# kopf posts a Kubernetes event per state change.
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Multi-user KFP: what the operator's KFP calls are authorized against (operators/kfp_runs.py):
     look up pipelines and their versions, find or create the experiment, find, create, follow and
     terminate runs. KFP checks pipeline versions as "pipelines". */}}
{{- define "flywheel.kfpOperatorRules" -}}
- apiGroups: ["pipelines.kubeflow.org"]
  resources: ["pipelines"]
  verbs: ["list"]
- apiGroups: ["pipelines.kubeflow.org"]
  resources: ["experiments"]
  verbs: ["list", "create"]
- apiGroups: ["pipelines.kubeflow.org"]
  resources: ["runs"]
  verbs: ["list", "get", "create", "terminate"]
{{- end -}}

{{/* Multi-user KFP: the upload Job and `helm test` (flywheel.pipelines.register): look pipelines and
     versions up, upload them, and remove the version KFP makes implicitly with a new pipeline. */}}
{{- define "flywheel.kfpClientRules" -}}
- apiGroups: ["pipelines.kubeflow.org"]
  resources: ["pipelines"]
  verbs: ["list", "create", "delete"]
{{- end -}}

{{/* flywheel.dev objects of one kind from values (see policies.yaml): root, kind, items. */}}
{{- define "flywheel.flywheelObjects" -}}
{{- $root := .root }}
{{- $kind := .kind }}
{{- $labels := include "flywheel.labels" $root | fromYaml }}
{{- $served := $root.Capabilities.APIVersions.Has (printf "flywheel.dev/v1alpha1/%s" $kind) }}
{{- range .items }}
---
apiVersion: flywheel.dev/v1alpha1
kind: {{ $kind }}
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml (merge (deepCopy (default dict .labels)) $labels) | nindent 4 }}
  annotations:
    {{- include "flywheel.argocdAnnotations" 3 | nindent 4 }}
    {{- if not $served }}
    helm.sh/hook: post-install,post-upgrade
    meta.helm.sh/release-name: {{ $root.Release.Name }}
    meta.helm.sh/release-namespace: {{ $root.Release.Namespace }}
    {{- end }}
    {{- with .annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- toYaml .spec | nindent 2 }}
{{- end }}
{{- end -}}
