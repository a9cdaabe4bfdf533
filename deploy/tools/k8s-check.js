#!/usr/bin/env node
// Helpers of the deploy tests (tests/deploy), run with the packages of
// deploy/tools/package.json:
//   validate FILE                 validate every object of a `helm template` output
//                                 against the Kubernetes schemas (kubernetes-models,
//                                 @kubernetes-models/prometheus-operator) and the chart's
//                                 own rules (gRPC probes, non-root, selectors match)
//   configmap-key FILE NAME KEY   print data[KEY] of ConfigMap NAME
//   rule-groups FILE              print the spec (rule groups) of the PrometheusRule
//   container-args FILE KIND NAME print the first container's command + args (JSON)
//   all-container-args FILE       print {"KIND/NAME": [command + args]} for the first
//                                 container of every Deployment and StatefulSet (JSON)
//   dashboard-exprs DASHBOARD     print [{panel, refId, expr}] as JSON, with Grafana
//                                 variables replaced ($namespace -> .*, $__rate_interval -> 1m)
//   dashboard-rules DASHBOARD     print the dashboard's expressions as a Prometheus
//                                 recording-rules file (for promtool check rules)
"use strict";
const fs = require("fs");
const YAML = require("yaml");

function docs(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((o) => o && typeof o === "object");
}

const GROUPS = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

function model(apiVersion, kind) {
  const mod = GROUPS[apiVersion];
  if (!mod) return null;
  const Class = require(mod)[kind];
  return Class || null;
}

function chartRules(o, errors) {
  const pod = o.kind === "Deployment" || o.kind === "StatefulSet" ? o.spec.template : null;
  if (!pod) return;
  const sel = o.spec.selector.matchLabels || {};
  for (const [k, v] of Object.entries(sel)) {
    if (pod.metadata.labels[k] !== v) errors.push(`selector ${k}=${v} does not match the pod labels`);
  }
  if (!pod.spec.securityContext || pod.spec.securityContext.runAsNonRoot !== true) {
    errors.push("pod securityContext.runAsNonRoot is not true");
  }
  for (const c of pod.spec.containers) {
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      if (!c[probe] || !c[probe].grpc) errors.push(`container ${c.name}: no native gRPC ${probe}`);
    }
    const ports = (c.ports || []).map((p) => p.name);
    for (const p of ["grpc", "metrics"]) if (!ports.includes(p)) errors.push(`container ${c.name}: no ${p} port`);
    if (!c.resources || !c.resources.requests) errors.push(`container ${c.name}: no resource requests`);
  }
  const volumes = new Set((pod.spec.volumes || []).map((v) => v.name));
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers || [])]) {
    for (const m of c.volumeMounts || []) {
      if (!volumes.has(m.name)) errors.push(`container ${c.name}: mounts unknown volume ${m.name}`);
    }
  }
}

function validate(file) {
  const objects = docs(file);
  let bad = 0;
  const seen = new Set();
  for (const o of objects) {
    const id = `${o.apiVersion} ${o.kind} ${o.metadata && o.metadata.name}`;
    const errors = [];
    const Class = model(o.apiVersion, o.kind);
    if (!Class) {
      errors.push("no schema for this apiVersion/kind");
    } else {
      try {
        new Class(o).validate();
      } catch (e) {
        errors.push(e.message);
      }
    }
    if (seen.has(id)) errors.push("duplicate object");
    seen.add(id);
    if (!errors.length) chartRules(o, errors);
    if (errors.length) {
      bad++;
      console.log(`INVALID ${id}: ${errors.join("; ")}`);
    } else {
      console.log(`valid   ${id}`);
    }
  }
  console.log(`${objects.length} objects, ${bad} invalid`);
  if (!objects.length || bad) process.exit(1);
}

function find(file, kind, name) {
  const o = docs(file).find((x) => x.kind === kind && (!name || x.metadata.name === name));
  if (!o) {
    console.error(`${file}: no ${kind} ${name || ""}`);
    process.exit(1);
  }
  return o;
}

function dashboardExprs(file) {
  const d = JSON.parse(fs.readFileSync(file, "utf8"));
  const out = [];
  const walk = (panels) => {
    for (const p of panels || []) {
      walk(p.panels);
      for (const t of p.targets || []) {
        if (!t.expr) continue;
        const expr = t.expr.replace(/\$__rate_interval|\$__interval|\$__range/g, "1m").replace(/\$namespace|\$\{namespace[^}]*\}/g, ".*");
        out.push({ panel: p.title, refId: t.refId, expr });
      }
    }
  };
  walk(d.panels);
  return out;
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case "validate":
    validate(args[0]);
    break;
  case "configmap-key":
    process.stdout.write(find(args[0], "ConfigMap", args[1]).data[args[2]]);
    break;
  case "container-args": {
    const c = find(args[0], args[1], args[2]).spec.template.spec.containers[0];
    process.stdout.write(JSON.stringify([...(c.command || []), ...(c.args || [])]) + "\n");
    break;
  }
  case "all-container-args": {
    const out = {};
    for (const o of docs(args[0])) {
      if (o.kind !== "Deployment" && o.kind !== "StatefulSet") continue;
      const c = o.spec.template.spec.containers[0];
      out[`${o.kind}/${o.metadata.name}`] = [...(c.command || []), ...(c.args || [])];
    }
    process.stdout.write(JSON.stringify(out) + "\n");
    break;
  }
  case "rule-groups":
    process.stdout.write(YAML.stringify(find(args[0], "PrometheusRule").spec));
    break;
  case "dashboard-exprs":
    process.stdout.write(JSON.stringify(dashboardExprs(args[0]), null, 1) + "\n");
    break;
  case "dashboard-rules": {
    const rules = dashboardExprs(args[0]).map((e, i) => ({
      record: `dashboard:panel_${i}:${e.refId}`.toLowerCase(),
      expr: e.expr,
    }));
    process.stdout.write(YAML.stringify({ groups: [{ name: "specserve.dashboard", rules }] }));
    break;
  }
  default:
    console.error("usage: k8s-check.js validate|configmap-key|container-args|rule-groups|dashboard-exprs|dashboard-rules ...");
    process.exit(2);
}
