#!/usr/bin/env node
// Writes deploy/grafana/specserve.json, the Grafana dashboard of specserve, from the
// panel list below (keeps ids, grid positions and datasource references consistent).
//   node deploy/grafana/generate.js            rewrite specserve.json
//   node deploy/grafana/generate.js --check    exit 1 if specserve.json is stale
// Only metric names the services export (router/router_metrics.cc,
// router/http/http_metrics.cc, services/worker_metrics.cc) may appear; tests/deploy checks them against live
// /metrics pages and runs every expression through a real Prometheus.
"use strict";
const fs = require("fs");
const path = require("path");

const DS = { type: "prometheus", uid: "${DS_PROMETHEUS}" };
const NS = 'namespace=~"$namespace"';
const RI = "$__rate_interval";

const rate = (m, extra = "") => `rate(${m}{${NS}${extra}}[${RI}])`;
const q = (p, m, by = "") =>
  `histogram_quantile(${p}, sum by (le${by ? ", " + by : ""}) (${rate(m + "_bucket")}))`;
const mean = (m) => `sum(${rate(m + "_sum")}) / sum(${rate(m + "_count")})`;
const t = (expr, legendFormat) => ({ expr, legendFormat });

// Each panel: title, type, unit, width/height, targets, optional description/options.
const rows = [
  {
    title: "Overview",
    panels: [
      { title: "Generated tokens/s", type: "stat", unit: "short", w: 4, h: 4,
        targets: [t(`sum(${rate("specserve_generated_tokens_total")})`, "tokens/s")] },
      { title: "Requests/s", type: "stat", unit: "reqps", w: 4, h: 4,
        targets: [t(`sum(${rate("specserve_requests_total")})`, "requests/s")] },
      { title: "TTFT p99", type: "stat", unit: "s", w: 4, h: 4,
        targets: [t(q(0.99, "specserve_time_to_first_token_seconds"), "p99")] },
      { title: "Drafted tokens accepted", type: "stat", unit: "percentunit", w: 4, h: 4,
        description: "Accepted drafted tokens / speculated tree nodes sent for verification.",
        targets: [t(`sum(${rate("specserve_tokens_accepted_total")}) / sum(${rate("specserve_tree_nodes_proposed_total")})`, "accepted")] },
      { title: "Speculation", type: "stat", unit: "none", w: 4, h: 4,
        description: "1: the last decoding step verified drafted tokens; 0: plain decoding.",
        mappings: [{ type: "value", options: { "0": { text: "off", color: "orange" }, "1": { text: "on", color: "green" } } }],
        targets: [t(`max(specserve_speculation_active{${NS}})`, "speculation")] },
      { title: "Draft available", type: "stat", unit: "none", w: 4, h: 4,
        mappings: [{ type: "value", options: { "0": { text: "down", color: "red" }, "1": { text: "up", color: "green" } } }],
        targets: [t(`min(specserve_draft_available{${NS}})`, "draft")] },
    ],
  },
  {
    title: "Throughput and latency",
    panels: [
      { title: "Throughput", type: "timeseries", unit: "short", w: 12, h: 8,
        description: "Generated and prompt tokens per second; the router's own tokens/s gauge.",
        targets: [
          t(`sum(${rate("specserve_generated_tokens_total")})`, "generated tokens/s"),
          t(`sum(${rate("specserve_prompt_tokens_total")})`, "prompt tokens/s"),
          t(`sum(specserve_tokens_per_second{${NS}})`, "router gauge tokens/s"),
        ] },
      { title: "Requests by outcome", type: "timeseries", unit: "reqps", w: 12, h: 8,
        targets: [t(`sum by (outcome) (${rate("specserve_requests_total")})`, "{{outcome}}")] },
      { title: "Time to first token", type: "timeseries", unit: "s", w: 12, h: 8,
        targets: [0.5, 0.9, 0.99].map((p) =>
          t(q(p, "specserve_time_to_first_token_seconds"), `p${Math.round(p * 100)}`)) },
      { title: "Inter-token latency", type: "timeseries", unit: "s", w: 12, h: 8,
        targets: [0.5, 0.9, 0.99].map((p) =>
          t(q(p, "specserve_inter_token_latency_seconds"), `p${Math.round(p * 100)}`)) },
    ],
  },
  {
    title: "Batching and memory",
    panels: [
      { title: "Batch size", type: "timeseries", unit: "short", w: 8, h: 8,
        description: "Sequences decoded per step (mean and p90) and requests in the running batch.",
        targets: [
          t(mean("specserve_batch_size"), "mean"),
          t(q(0.9, "specserve_batch_size"), "p90"),
          t(`sum(specserve_live_sequences{${NS}})`, "live sequences"),
        ] },
      { title: "Queue depth", type: "timeseries", unit: "short", w: 8, h: 8,
        description: "Requests waiting to join the batch; past serving.maxQueue they are refused.",
        targets: [
          t(`sum(specserve_queue_depth{${NS}})`, "queued"),
          t(`sum(${rate("specserve_requests_total", ',outcome="rejected"')}) or on() vector(0)`, "refused/s"),
        ] },
      { title: "KV cache usage", type: "timeseries", unit: "bytes", w: 8, h: 8,
        description: "KV bytes held for live sequences, by worker (target: full KV; draft: window KV).",
        targets: [
          t(`sum by (worker) (specserve_kv_usage_bytes{${NS}})`, "{{worker}} bytes"),
        ] },
      { title: "Sequences with KV", type: "timeseries", unit: "short", w: 8, h: 8,
        targets: [t(`sum by (worker) (specserve_kv_sequences{${NS}})`, "{{worker}}")] },
      { title: "Worker batch size", type: "timeseries", unit: "short", w: 8, h: 8,
        description: "Sequences per Propose (draft) / Verify (target) call.",
        targets: [t(`sum by (worker) (${rate("specserve_worker_batch_size_sum")}) / sum by (worker) (${rate("specserve_worker_batch_size_count")})`, "{{worker}}")] },
      { title: "Context length", type: "timeseries", unit: "short", w: 8, h: 8,
        description: "Mean context length of the decoded sequences, per step.",
        targets: [
          t(mean("specserve_context_length_tokens"), "mean"),
          t(q(0.9, "specserve_context_length_tokens"), "p90"),
        ] },
    ],
  },
  {
    title: "Speculation",
    panels: [
      { title: "Acceptance rate", type: "timeseries", unit: "percentunit", w: 12, h: 8,
        description: "Drafted tokens accepted per speculated node, and how often a node's top draft candidate was the accepted one.",
        targets: [
          t(`sum(${rate("specserve_tokens_accepted_total")}) / sum(${rate("specserve_tree_nodes_proposed_total")})`, "accepted / proposed node"),
          t(`sum(${rate("specserve_candidate_accepted_total", ',position="1"')}) / sum(${rate("specserve_candidate_visits_total", ',position="1"')})`, "top candidate accepted"),
        ] },
      { title: "Accepted length per step", type: "timeseries", unit: "short", w: 12, h: 8,
        description: "Drafted tokens accepted per sequence per step (each step also gives one token of the target).",
        targets: [
          t(mean("specserve_accepted_length_tokens"), "mean"),
          t(q(0.5, "specserve_accepted_length_tokens"), "p50"),
          t(q(0.9, "specserve_accepted_length_tokens"), "p90"),
          t(`sum(${rate("specserve_generated_tokens_total")}) / sum(${rate("specserve_batch_size_sum")})`, "tokens per sequence-step"),
        ] },
      { title: "Acceptance by candidate position (planner)", type: "bargauge", unit: "percentunit", w: 8, h: 8,
        description: "The planner's acceptance vector: P(the k-th candidate of a node is the accepted one). The Sequoia tree shape is optimised for it.",
        instant: true,
        targets: [t(`max by (position) (specserve_acceptance_by_position_ratio{${NS}})`, "#{{position}}")] },
      { title: "Acceptance by candidate position (measured)", type: "timeseries", unit: "percentunit", w: 16, h: 8,
        description: "Verified nodes whose accepted child was the k-th candidate / nodes that had at least k candidates.",
        targets: [t(`sum by (position) (${rate("specserve_candidate_accepted_total")}) / sum by (position) (${rate("specserve_candidate_visits_total")})`, "#{{position}}")] },
      { title: "Tree size chosen vs context length and batch", type: "timeseries", unit: "short", w: 12, h: 8,
        description: "Speculated nodes per sequence and depth the planner chose (0: plain decoding), against mean context length and batch size (right axis).",
        rightAxis: ["context length", "batch size"],
        targets: [
          t(`max(specserve_planner_tree_nodes{${NS}})`, "tree nodes"),
          t(`max(specserve_planner_tree_depth{${NS}})`, "tree depth"),
          t(`sum(${rate("specserve_tree_nodes_proposed_total")}) / sum(${rate("specserve_batch_size_sum")})`, "nodes per sequence-step"),
          t(mean("specserve_context_length_tokens"), "context length"),
          t(mean("specserve_batch_size"), "batch size"),
        ] },
      { title: "Draft and verify step time", type: "timeseries", unit: "s", w: 12, h: 8,
        description: "The Propose (draft) and Verify (target) parts of a step, as the router measures them; the planner's cost inputs.",
        targets: [
          t(q(0.5, "specserve_draft_step_seconds"), "draft p50"),
          t(q(0.99, "specserve_draft_step_seconds"), "draft p99"),
          t(q(0.5, "specserve_verify_step_seconds"), "verify p50"),
          t(q(0.99, "specserve_verify_step_seconds"), "verify p99"),
        ] },
      { title: "Speculation on/off", type: "timeseries", unit: "none", w: 12, h: 8,
        description: "speculation active (1) or plain decoding (0); draft available; probe steps while plain decoding wins.",
        targets: [
          t(`max(specserve_speculation_active{${NS}})`, "speculation active"),
          t(`min(specserve_draft_available{${NS}})`, "draft available"),
          t(`max(specserve_planner_exploring{${NS}})`, "exploring"),
        ] },
      { title: "Steps by kind", type: "timeseries", unit: "ops", w: 12, h: 8,
        description: "Engine steps per second: speculative, plain, draft_failed (draft down or slow), prefill.",
        targets: [t(`sum by (kind) (${rate("specserve_steps_total")})`, "{{kind}}")] },
      { title: "Worker call time p99", type: "timeseries", unit: "s", w: 12, h: 8,
        description: "Seconds a worker spends on one batch call, by worker and method (server side).",
        targets: [t(q(0.99, "specserve_worker_call_seconds", "worker, method"), "{{worker}} {{method}}")] },
      { title: "Worker calls by outcome", type: "timeseries", unit: "ops", w: 12, h: 8,
        targets: [t(`sum by (worker, method, outcome) (${rate("specserve_worker_calls_total")})`, "{{worker}} {{method}} {{outcome}}")] },
      { title: "Stage utilisation (draft and target)", type: "timeseries", unit: "percentunit", w: 12, h: 8,
        description: "Share of the time each stage was busy. Without --pipeline the router runs Propose then Verify, so the two add up to at most 1; with --pipeline (two micro-batches in flight) they overlap and both can approach 1.",
        targets: [
          t(`max by (stage) (specserve_stage_utilization_ratio{${NS}})`, "{{stage}}"),
          t(`sum by (stage) (${rate("specserve_stage_busy_seconds_total")})`, "{{stage}} (busy seconds per second)"),
        ] },
      { title: "Trees drafted ahead", type: "timeseries", unit: "ops", w: 12, h: 8,
        description: "With --pipeline and --draft-ahead: trees the draft drafted ahead while the target verified a lone micro-batch (drafted), and those the next proposal used because the target accepted the guessed path (used). Their ratio is the share of proposals that cost no draft pass.",
        targets: [t(`sum by (outcome) (${rate("specserve_draft_ahead_trees_total")})`, "{{outcome}}")] },
    ],
  },
  {
    title: "HTTP API (OpenAI-compatible)",
    panels: [
      { title: "HTTP requests by endpoint and status", type: "timeseries", unit: "reqps", w: 12, h: 8,
        description: "Requests per second to the OpenAI-compatible API, by endpoint and HTTP status code.",
        targets: [t(`sum by (endpoint, code) (${rate("specserve_http_requests_total")})`, "{{endpoint}} {{code}}")] },
      { title: "HTTP errors", type: "timeseries", unit: "reqps", w: 6, h: 8,
        description: "4xx (bad requests, 413 bodies too large, 429 queue full) and 5xx (503 draining or target down) per second.",
        targets: [
          t(`sum(${rate("specserve_http_requests_total", ',code=~"4.."')}) or on() vector(0)`, "4xx/s"),
          t(`sum(${rate("specserve_http_requests_total", ',code=~"5.."')}) or on() vector(0)`, "5xx/s"),
        ] },
      { title: "HTTP connections and requests in flight", type: "timeseries", unit: "short", w: 6, h: 8,
        description: "Open connections, connections refused over --http-max-connections, and requests being served by endpoint.",
        targets: [
          t(`sum(specserve_http_open_connections{${NS}})`, "open connections"),
          t(`sum(specserve_http_rejected_connections{${NS}})`, "refused connections (total)"),
          t(`sum by (endpoint) (specserve_http_requests_in_flight{${NS}})`, "{{endpoint}} in flight"),
        ] },
      { title: "HTTP time to first token", type: "timeseries", unit: "s", w: 8, h: 8,
        description: "From the HTTP request's arrival to its first generated text, by endpoint.",
        targets: [0.5, 0.99].map((p) =>
          t(q(p, "specserve_http_time_to_first_token_seconds", "endpoint"), `{{endpoint}} p${Math.round(p * 100)}`)) },
      { title: "HTTP inter-token latency", type: "timeseries", unit: "s", w: 8, h: 8,
        description: "Between consecutive text events of an SSE stream, by endpoint (what a streaming client sees).",
        targets: [0.5, 0.99].map((p) =>
          t(q(p, "specserve_http_inter_token_latency_seconds", "endpoint"), `{{endpoint}} p${Math.round(p * 100)}`)) },
      { title: "HTTP end-to-end latency", type: "timeseries", unit: "s", w: 8, h: 8,
        description: "From the HTTP request's arrival to its last byte, by endpoint.",
        targets: [0.5, 0.99].map((p) =>
          t(q(p, "specserve_http_request_duration_seconds", "endpoint"), `{{endpoint}} p${Math.round(p * 100)}`)) },
    ],
  },
];

function panel(p, id, x, y) {
  const out = {
    id, type: p.type, title: p.title, datasource: DS,
    gridPos: { h: p.h, w: p.w, x, y },
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
    options: {},
    targets: p.targets.map((tg, i) => ({
      datasource: DS, refId: String.fromCharCode(65 + i), expr: tg.expr,
      legendFormat: tg.legendFormat, range: !p.instant, instant: !!p.instant,
    })),
  };
  if (p.description) out.description = p.description;
  if (p.mappings) out.fieldConfig.defaults.mappings = p.mappings;
  if (p.type === "timeseries") {
    out.fieldConfig.defaults.custom = { drawStyle: "line", lineWidth: 1, fillOpacity: 10, showPoints: "never", spanNulls: true };
    out.options = { legend: { displayMode: "list", placement: "bottom", showLegend: true }, tooltip: { mode: "multi", sort: "none" } };
    for (const name of p.rightAxis || []) {
      out.fieldConfig.overrides.push({
        matcher: { id: "byName", options: name },
        properties: [{ id: "custom.axisPlacement", value: "right" }, { id: "unit", value: "short" }],
      });
    }
  } else if (p.type === "stat") {
    out.options = { reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false }, colorMode: "value", graphMode: "area", textMode: "auto" };
  } else if (p.type === "bargauge") {
    out.fieldConfig.defaults.min = 0;
    out.fieldConfig.defaults.max = 1;
    out.options = { reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false }, orientation: "vertical", displayMode: "gradient" };
  }
  return out;
}

function dashboard() {
  const panels = [];
  let id = 1, y = 0;
  for (const row of rows) {
    panels.push({ id: id++, type: "row", title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0, rowH = 0;
    for (const p of row.panels) {
      if (x + p.w > 24) { x = 0; y += rowH; rowH = 0; }
      panels.push(panel(p, id++, x, y));
      x += p.w;
      rowH = Math.max(rowH, p.h);
    }
    y += rowH;
  }
  return {
    __inputs: [{ name: "DS_PROMETHEUS", label: "Prometheus", description: "The Prometheus that scrapes specserve", type: "datasource", pluginId: "prometheus", pluginName: "Prometheus" }],
    __requires: [
      { type: "grafana", id: "grafana", name: "Grafana", version: "9.0.0" },
      { type: "datasource", id: "prometheus", name: "Prometheus", version: "1.0.0" },
      { type: "panel", id: "timeseries", name: "Time series", version: "" },
      { type: "panel", id: "stat", name: "Stat", version: "" },
      { type: "panel", id: "bargauge", name: "Bar gauge", version: "" },
    ],
    annotations: { list: [] },
    description: "specserve: speculative decoding serving (router, draft, target). Generated by deploy/grafana/generate.js.",
    editable: true,
    graphTooltip: 1,
    id: null,
    links: [],
    panels,
    refresh: "30s",
    schemaVersion: 38,
    tags: ["specserve", "llm"],
    templating: {
      list: [
        { name: "DS_PROMETHEUS", label: "Prometheus", type: "datasource", query: "prometheus", current: {}, hide: 0 },
        { name: "namespace", label: "Namespace", type: "query", datasource: DS,
          query: { query: "label_values(specserve_generated_tokens_total, namespace)", refId: "namespace" },
          definition: "label_values(specserve_generated_tokens_total, namespace)",
          includeAll: true, allValue: ".*", multi: true, refresh: 2, current: { selected: true, text: ["All"], value: ["$__all"] } },
      ],
    },
    time: { from: "now-1h", to: "now" },
    timepicker: {},
    timezone: "",
    title: "specserve",
    uid: "specserve",
    version: 1,
  };
}

const file = path.join(__dirname, "specserve.json");
const text = JSON.stringify(dashboard(), null, 2) + "\n";
if (process.argv.includes("--check")) {
  const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  if (current !== text) {
    console.error(`${file} is stale: run node deploy/grafana/generate.js`);
    process.exit(1);
  }
  console.log(`${file} is current`);
} else {
  fs.writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
