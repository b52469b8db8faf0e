/**
 * deploy/kubernetes/rms.yaml cannot be applied here (no cluster), so it is checked the way a
 * cluster would: every document against the Kubernetes API schemas (kubernetes-models), and
 * against RMS itself — every setting it names is one RMS reads and loads, the probes hit
 * RMS's health routes on the port it listens on, and the pod is given longer to stop than
 * RMS's shutdown grace plus the preStop pause.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CONFIG_VARIABLES, loadConfig } from '@rms/message-service';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';

const MANIFEST = new URL('../../deploy/kubernetes/rms.yaml', import.meta.url);

/** The model class of each kind the manifest may hold. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'v1 ConfigMap': ConfigMap,
  'v1 Secret': Secret,
  'v1 Service': Service,
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [field: string]: unknown;
}

function documents(text: string): Manifest[] {
  return parseAllDocuments(text).map((document) => {
    assert.deepEqual(document.errors, [], 'the YAML parses');
    return document.toJS() as Manifest;
  });
}

function validate(manifest: Manifest): void {
  const Model = MODELS[`${manifest.apiVersion} ${manifest.kind}`];
  assert.ok(Model, `no schema known for ${manifest.apiVersion} ${manifest.kind}`);
  new Model(manifest as never).validate();
}

describe('deploy/kubernetes/rms.yaml', () => {
  const manifests = documents(readFileSync(MANIFEST, 'utf8'));
  const byKind = (kind: string) => manifests.find((manifest) => manifest.kind === kind) as any;

  test('every document is valid against the Kubernetes API schema of its kind', () => {
    assert.deepEqual(manifests.map((manifest) => manifest.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Secret', 'Service']);
    for (const manifest of manifests) validate(manifest);
  });

  // The published schemas (like kubeconform without -strict) do not refuse unknown fields;
  // types, enums and required fields they do check.
  test('the schema check can fail: a wrong type or a missing required field is refused', () => {
    const deployment = structuredClone(byKind('Deployment'));
    deployment.spec.replicas = 'three';
    assert.throws(() => validate(deployment), /replicas must be integer/);
    const nameless = structuredClone(byKind('Deployment'));
    delete nameless.spec.template.spec.containers[0].name;
    assert.throws(() => validate(nameless), /must have required property name/);
  });

  test('every setting is one RMS reads, and together they load as a valid configuration', () => {
    const env = { ...byKind('ConfigMap').data, ...byKind('Secret').stringData } as Record<string, string>;
    const unknown = Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name));
    assert.deepEqual(unknown, [], 'settings RMS does not read');
    const config = loadConfig(env);
    assert.equal(config.port, 8080);
  });

  test('probes hit /readyz and /healthz on the port RMS listens on; the Service and the scrape annotation use it too', () => {
    const deployment = byKind('Deployment');
    const container = deployment.spec.template.spec.containers[0];
    const port = Number(byKind('ConfigMap').data.PORT);
    assert.equal(container.ports[0].containerPort, port);
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(byKind('Service').spec.ports[0].port, port);
    assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/port'], String(port));
    assert.deepEqual(byKind('PodDisruptionBudget').spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    assert.deepEqual(byKind('Service').spec.selector, deployment.spec.selector.matchLabels);
  });

  test('the pod gets longer to stop than RMS’s shutdown grace plus the preStop pause', () => {
    const spec = byKind('Deployment').spec.template.spec;
    const preStopSeconds = Number(spec.containers[0].lifecycle.preStop.exec.command[1]);
    const graceMs = Number(byKind('ConfigMap').data.RMS_SHUTDOWN_GRACE_MS);
    assert.ok(spec.terminationGracePeriodSeconds * 1000 > graceMs + preStopSeconds * 1000, `${spec.terminationGracePeriodSeconds} s > ${graceMs} ms + ${preStopSeconds} s`);
  });

  test('the image runs as the non-root user the Dockerfile creates', () => {
    const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
    const spec = byKind('Deployment').spec.template.spec;
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.match(dockerfile, /^USER\s+\S+/m, 'the Dockerfile switches to a non-root user');
  });
});
