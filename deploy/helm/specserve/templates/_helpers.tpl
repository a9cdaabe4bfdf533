{{/* Names and labels. */}}
{{- define "specserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "specserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "specserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "specserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "specserve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "specserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: specserve
{{- end -}}

{{/* Component labels: (dict "ctx" $ "component" "router") */}}
{{- define "specserve.componentLabels" -}}
{{ include "specserve.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "specserve.componentSelector" -}}
{{ include "specserve.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "specserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "specserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "specserve.image" -}}
{{- printf "%s:%s-%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) .Values.device -}}
{{- end -}}

{{/* The components this release runs (a list of names). */}}
{{- define "specserve.components" -}}
{{- if eq .Values.mode "allInOne" -}}
serve
{{- else -}}
router
{{ if .Values.draft.enabled }}draft
{{ end }}target
{{- end -}}
{{- end -}}

{{/* Service DNS name of a component: (dict "ctx" $ "component" "router") */}}
{{- define "specserve.serviceHost" -}}
{{- printf "%s-%s.%s.svc" (include "specserve.fullname" .ctx) .component .ctx.Release.Namespace -}}
{{- end -}}

{{/* Model flags: (dict "ctx" $ "file" FILE) */}}
{{- define "specserve.modelArgs" -}}
- --model={{ .ctx.Values.model.mountPath }}/{{ .file }}
{{- if .ctx.Values.model.tokenizer }}
- --tokenizer={{ .ctx.Values.model.mountPath }}/{{ .ctx.Values.model.tokenizer }}
{{- end }}
{{- end -}}

{{/* Common container flags: listen on all interfaces, metrics port. */}}
{{- define "specserve.listenArgs" -}}
- --listen=0.0.0.0:{{ .Values.ports.grpc }}
- --metrics-port={{ .Values.ports.metrics }}
{{- end -}}

{{/* The draft's device: cuda only when it gets a GPU (gpu.type none: it runs on the CPU
     beside a GPU target). */}}
{{- define "specserve.draftDevice" -}}
{{- if and (eq .Values.device "cuda") (ne .Values.draft.gpu.type "none") -}}cuda{{- else -}}cpu{{- end -}}
{{- end -}}

{{/* Refuses, at template time, a GPU setting that cannot start, naming the value to change. */}}
{{- define "specserve.validate" -}}
{{- if and (eq .Values.mode "allInOne") (eq .Values.device "cuda") (lt (int .Values.allInOne.gpus) 1) -}}
{{- fail "device: cuda with allInOne.gpus: 0: specserve-serve --device=cuda needs a GPU; set allInOne.gpus >= 1, or device: cpu" -}}
{{- end -}}
{{- if and (eq .Values.serving.kvType "bf16") (eq .Values.device "cuda") -}}
{{- fail "serving.kvType: bf16 is for the CPU models (the CUDA backend keeps its own KV format): set device: cpu, or kvType: f32" -}}
{{- end -}}
{{- if and (eq .Values.mode "split") (eq .Values.device "cpu") .Values.draft.enabled (eq .Values.draft.gpu.type "mig") -}}
{{- fail "draft.gpu.type: mig with device: cpu: a MIG slice is a GPU; set device: cuda, or draft.gpu.type: none" -}}
{{- end -}}
{{- end -}}

{{/* Router/all-in-one serving flags (the draft window belongs to whoever runs the draft:
     specserve-draft, or specserve-serve). */}}
{{- define "specserve.servingArgs" -}}
- --max-batch={{ .Values.serving.maxBatch }}
- --max-queue={{ .Values.serving.maxQueue }}
- --max-context={{ .Values.serving.maxContext }}
- --spec={{ .Values.serving.spec }}
- --drain-seconds={{ .Values.serving.drainSeconds }}
- --stream-interval-ms={{ .Values.serving.streamIntervalMs }}
- --stream-messages-per-second={{ .Values.serving.streamMessagesPerSecond }}
{{- end -}}

{{- define "specserve.ports" -}}
- name: grpc
  containerPort: {{ .Values.ports.grpc }}
  protocol: TCP
- name: metrics
  containerPort: {{ .Values.ports.metrics }}
  protocol: TCP
{{- end -}}

{{/* The HTTP API's container port (router and all-in-one server). */}}
{{- define "specserve.httpPort" -}}
- name: http
  containerPort: {{ .Values.ports.http }}
  protocol: TCP
{{- end -}}

{{/* The HTTP API's Service port. */}}
{{- define "specserve.httpServicePort" -}}
- name: http
  port: {{ .Values.ports.http }}
  targetPort: http
  protocol: TCP
  appProtocol: http
{{- end -}}

{{/* Native gRPC probes on the standard health service. */}}
{{- define "specserve.probes" -}}
startupProbe:
  grpc:
    port: {{ .Values.ports.grpc }}
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  grpc:
    port: {{ .Values.ports.grpc }}
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ .Values.ports.grpc }}
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end -}}

{{- define "specserve.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ .Values.securityContext.runAsUser }}
  runAsGroup: {{ .Values.securityContext.runAsGroup }}
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "specserve.podSecurityContext" -}}
securityContext:
  runAsNonRoot: {{ .Values.securityContext.runAsNonRoot }}
  runAsUser: {{ .Values.securityContext.runAsUser }}
  runAsGroup: {{ .Values.securityContext.runAsGroup }}
  fsGroup: {{ .Values.securityContext.fsGroup }}
{{- end -}}

{{/* Resources with the GPU request merged in: (dict "ctx" $ "resources" R "gpuName" N "gpuCount" C) */}}
{{- define "specserve.resources" -}}
{{- $res := deepCopy (default dict .resources) -}}
{{- if and .gpuName (gt (int .gpuCount) 0) -}}
{{- $limits := deepCopy (default dict (get $res "limits")) -}}
{{- $_ := set $limits .gpuName (int .gpuCount) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{- if $res }}
resources:
{{ toYaml $res | indent 2 }}
{{- else }}
resources: {}
{{- end -}}
{{- end -}}

{{/* Scheduling: (dict "ctx" $ "spec" COMPONENT_VALUES "gpu" BOOL) */}}
{{- define "specserve.scheduling" -}}
{{- with .spec.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- $tol := .spec.tolerations -}}
{{- if .gpu }}{{ $tol = concat .spec.tolerations .ctx.Values.gpuTolerations }}{{ end -}}
{{- with $tol }}
tolerations:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .spec.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level pieces every component shares. */}}
{{- define "specserve.podCommon" -}}
serviceAccountName: {{ include "specserve.serviceAccountName" . }}
{{- with .Values.pullSecrets }}
imagePullSecrets:
{{ toYaml . | indent 2 }}
{{- end }}
{{ include "specserve.podSecurityContext" . }}
terminationGracePeriodSeconds: {{ add .Values.serving.drainSeconds 15 }}
{{- end -}}

{{- define "specserve.modelVolume" -}}
- name: model
{{- if .Values.model.volume }}
{{ toYaml .Values.model.volume | indent 2 }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "specserve.modelMounts" -}}
- name: model
  mountPath: {{ .Values.model.mountPath }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The operator's model fetch step, if any. */}}
{{- define "specserve.initContainers" -}}
{{- if .Values.model.fetch.enabled }}
initContainers:
  - name: fetch-model
    image: {{ .Values.model.fetch.image }}
    imagePullPolicy: IfNotPresent
    command:
{{ toYaml .Values.model.fetch.command | indent 6 }}
    env:
      - name: MODEL_DIR
        value: {{ .Values.model.mountPath | quote }}
{{- with .Values.model.fetch.env }}
{{ toYaml . | indent 6 }}
{{- end }}
    volumeMounts:
      - name: model
        mountPath: {{ .Values.model.mountPath }}
      - name: tmp
        mountPath: /tmp
{{ include "specserve.containerSecurityContext" . | indent 4 }}
{{- with .Values.model.fetch.resources }}
    resources:
{{ toYaml . | indent 6 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* GPU resource name of the draft ("" when it asks for none). */}}
{{- define "specserve.draftGpuName" -}}
{{- if eq .Values.device "cuda" -}}
{{- if eq .Values.draft.gpu.type "gpu" -}}nvidia.com/gpu
{{- else if eq .Values.draft.gpu.type "mig" -}}nvidia.com/mig-{{ .Values.draft.gpu.migProfile }}
{{- end -}}
{{- end -}}
{{- end -}}
