{{/*
The alert rules (Prometheus rule groups), shared by the PrometheusRule and the plain
Prometheus ConfigMap. deploy/README.md explains each alert and what to do.
*/}}
{{- define "specserve.alertGroups" -}}
{{- $a := .Values.alerts -}}
groups:
  - name: specserve.alerts
    rules:
{{- if $a.acceptanceCollapse.enabled }}
      - alert: SpecserveAcceptanceCollapse
        expr: |-
          (
            sum by (namespace) (rate(specserve_candidate_accepted_total{position="1"}[10m]))
          /
            sum by (namespace) (rate(specserve_candidate_visits_total{position="1"}[10m]))
          ) < {{ $a.acceptanceCollapse.below }}
        for: {{ $a.acceptanceCollapse.for }}
        labels:
          severity: warning
        annotations:
          summary: Draft acceptance collapsed
          description: >-
            Only {{ "{{" }} $value | humanizePercentage {{ "}}" }} of verified tree nodes accepted the
            draft's top candidate (threshold {{ $a.acceptanceCollapse.below }}). Speculation gains little:
            check the draft model matches the target (same tokenizer and family), the draft
            window (serving.window) against the workload's context, and the sampling settings.
{{- end }}
{{- if $a.queueSaturation.enabled }}
      - alert: SpecserveQueueSaturated
        expr: |-
          max by (namespace) (specserve_queue_depth) > {{ mulf $a.queueSaturation.above .Values.serving.maxQueue }}
        for: {{ $a.queueSaturation.for }}
        labels:
          severity: warning
        annotations:
          summary: Request queue near its limit
          description: >-
            {{ "{{" }} $value {{ "}}" }} requests are waiting to join the batch (limit serving.maxQueue =
            {{ .Values.serving.maxQueue }}); new requests will soon be refused with RESOURCE_EXHAUSTED.
            Add capacity (more all-in-one replicas or another split release) or raise serving.maxBatch
            if the GPUs have memory left.
      - alert: SpecserveRequestsRefused
        expr: |-
          sum by (namespace) (rate(specserve_requests_total{outcome="rejected"}[5m])) > 0
        for: {{ $a.queueSaturation.for }}
        labels:
          severity: critical
        annotations:
          summary: Requests refused for overload
          description: >-
            {{ "{{" }} $value | humanize {{ "}}" }} requests/s are refused with RESOURCE_EXHAUSTED because the
            queue is full. Add capacity or shed load upstream.
{{- end }}
{{- if $a.draftDown.enabled }}
      - alert: SpecserveDraftDown
        expr: |-
          max by (namespace) (specserve_draft_available) == 0
        for: {{ $a.draftDown.for }}
        labels:
          severity: warning
        annotations:
          summary: Draft service down, speculation is off
          description: >-
            The router's Propose calls fail or time out, so it decodes without speculation
            (correct output, lower throughput). Check the draft pod (restarts, OOM, GPU or MIG
            slice), and router.draftTimeoutMs against the draft step time.
{{- end }}
{{- if $a.stepLatency.enabled }}
      - alert: SpecserveVerifyStepSlow
        expr: |-
          histogram_quantile(0.99, sum by (namespace, le) (rate(specserve_verify_step_seconds_bucket[5m]))) > {{ $a.stepLatency.verifyP99Seconds }}
        for: {{ $a.stepLatency.for }}
        labels:
          severity: warning
        annotations:
          summary: Verify step latency high
          description: >-
            The 99th percentile of the target's verify step is {{ "{{" }} $value | humanizeDuration {{ "}}" }}
            (threshold {{ $a.stepLatency.verifyP99Seconds }}s); inter-token latency follows it. Look at batch
            size and context length (KV-bound), GPU health, and lower serving.maxBatch or
            serving.maxContext, or add tensor-parallel GPUs.
      - alert: SpecserveDraftStepSlow
        expr: |-
          histogram_quantile(0.99, sum by (namespace, le) (rate(specserve_draft_step_seconds_bucket[5m]))) > {{ $a.stepLatency.draftP99Seconds }}
        for: {{ $a.stepLatency.for }}
        labels:
          severity: warning
        annotations:
          summary: Draft step latency high
          description: >-
            The 99th percentile of the draft's propose step is {{ "{{" }} $value | humanizeDuration {{ "}}" }}
            (threshold {{ $a.stepLatency.draftP99Seconds }}s). The planner shrinks trees when drafting is
            slow, so throughput drops; check the draft's GPU or MIG slice is not shared or throttled.
{{- end }}
{{- end -}}

{{/* The scrape configuration for a Prometheus that is not run by the operator. */}}
{{- define "specserve.scrapeConfigs" -}}
{{- $sc := .Values.metrics.scrapeConfig -}}
scrape_configs:
{{- range $component := splitList "\n" (include "specserve.components" $) }}
  - job_name: specserve-{{ $component }}
    scrape_interval: {{ $sc.interval }}
    metrics_path: /metrics
{{- if eq $sc.discovery "static" }}
    static_configs:
      - targets:
          - {{ include "specserve.serviceHost" (dict "ctx" $ "component" $component) }}:{{ $.Values.ports.metrics }}
        labels:
          namespace: {{ $.Release.Namespace }}
          component: {{ $component }}
{{- else }}
    kubernetes_sd_configs:
      - role: endpoints
        namespaces:
          names: [{{ $.Release.Namespace }}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_instance, __meta_kubernetes_service_label_app_kubernetes_io_component, __meta_kubernetes_endpoint_port_name]
        regex: {{ $.Release.Name }};{{ $component }};metrics
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - target_label: component
        replacement: {{ $component }}
{{- end }}
{{- end }}
{{- end -}}
