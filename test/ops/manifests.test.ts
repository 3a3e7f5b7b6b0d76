/**
 * The deployment files parse, have the expected kinds, reference files that exist, and agree
 * with each other: compose mounts, Kubernetes ports, probes, selectors and volumes, the
 * configurations they carry (loaded with Postern's own config and policy loaders), and the
 * Dockerfile's user and copied paths.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import { loadConfig, parseHostPort } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { loadPolicies } from '../../src/policy/load.ts';
import { DEPLOY, ROOT } from './helpers/tools.ts';

// The parts of the manifests the checks read (what a consumer such as kubectl relies on).
interface ComposeService {
  build?: { context: string; dockerfile?: string };
  volumes?: string[];
  ports?: string[];
  environment?: Record<string, string>;
}
interface Compose {
  services: Record<string, ComposeService>;
  networks: { mail: { ipam: { config: Array<{ subnet: string }> } } };
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  data?: Record<string, string>;
}
interface Container {
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  readinessProbe: { httpGet: unknown };
  livenessProbe: { httpGet: unknown };
  lifecycle?: { preStop?: unknown };
  securityContext: { capabilities: unknown; allowPrivilegeEscalation: boolean };
  resources: { requests: { cpu?: string } };
  volumeMounts: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext: { runAsNonRoot: boolean; runAsUser: number };
  containers: Container[];
  volumes: Array<{ name: string; configMap: { name: string } }>;
}
interface Deployment extends K8sObject {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}
interface Service extends K8sObject {
  spec: { type: string; externalTrafficPolicy?: string; selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> };
}
interface Pdb extends K8sObject { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }
interface Hpa extends K8sObject { spec: { scaleTargetRef: unknown; minReplicas: number; metrics: Array<{ resource: { name: string } }> } }
interface Kustomization { namespace: string; resources: string[] }
interface GrafanaProvider { providers: Array<{ options: { path: string } }> }
interface GrafanaDatasources { datasources: Array<{ url: string }> }
interface PrometheusConfig { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> }

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-manifests-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every document of a YAML file; fails on any parse error or warning. */
function documents<T>(file: string): T[] {
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'), { uniqueKeys: true });
  assert.ok(Array.isArray(docs), `${file}: not a YAML stream`);
  for (const d of docs) {
    assert.deepEqual(d.errors.map((e) => e.message), [], `${file}: YAML errors`);
    assert.deepEqual(d.warnings.map((e) => e.message), [], `${file}: YAML warnings`);
  }
  return docs.map((d) => d.toJS() as T | null).filter((d) => d !== null);
}

/** Loads a Postern config text with the real loader (no POSTERN_* overrides from this shell). */
function postern(text: string, name: string): Config {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return loadConfig({ file, env: {}, cwd: tmp }).config;
}

describe('deploy/compose.yaml', () => {
  const file = path.join(DEPLOY, 'compose.yaml');
  const compose = documents<Compose>(file)[0]!;
  const services = compose.services;
  const hostPath = (spec: string): string => path.resolve(DEPLOY, spec.split(':')[0]!);
  const mounts = (service: string): Array<{ source: string; target: string }> => (services[service]?.volumes ?? [])
    .map((v) => ({ source: v.split(':')[0]!, target: v.split(':')[1]! }));

  it('has postern, postfix, redis, prometheus and grafana', () => {
    assert.deepEqual(Object.keys(services).sort(), ['grafana', 'postern', 'postfix', 'prometheus', 'redis']);
  });

  it('every build context, Dockerfile and bind-mounted file exists', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build) {
        const context = path.resolve(DEPLOY, s.build.context);
        assert.ok(fs.statSync(context).isDirectory(), `${name}: build context ${context}`);
        assert.ok(fs.existsSync(path.join(context, s.build.dockerfile ?? 'Dockerfile')), `${name}: Dockerfile`);
      }
      for (const m of mounts(name)) if (m.source.startsWith('.')) assert.ok(fs.existsSync(hostPath(m.source)), `${name}: ${m.source} does not exist`);
    }
    assert.equal(services.postern?.build?.dockerfile, 'deploy/docker/Dockerfile');
  });

  it("postern's mounted config is valid and points at the compose services", () => {
    const mount = mounts('postern').find((m) => m.target === '/etc/postern/postern.yaml');
    assert.ok(mount, 'no config mounted at /etc/postern/postern.yaml (the image CMD reads it)');
    const config = postern(fs.readFileSync(hostPath(mount.source), 'utf8'), 'compose-postern.yaml');
    assert.equal(config.backend.host, 'postfix');
    assert.ok(config.domains.length > 0);
    assert.equal(new URL(config.redis.url!).hostname, 'redis');
    assert.ok(mounts('postern').some((m) => m.target === config.policies && fs.existsSync(path.join(hostPath(m.source), '00-defaults.yaml'))), 'policies folder mounted where the config says');
    const smtp = parseHostPort(config.listen[0]!).port;
    assert.ok((services.postern?.ports ?? []).some((p) => p.endsWith(`:${smtp}`)), `SMTP port ${smtp} published`);
    // Prometheus scrapes the service name on the metrics port the config sets.
    const prom = parse(fs.readFileSync(path.join(DEPLOY, 'prometheus/prometheus.yml'), 'utf8')) as PrometheusConfig;
    const job = prom.scrape_configs.find((j) => j.job_name === 'postern');
    assert.deepEqual(job?.static_configs[0]?.targets, [`postern:${parseHostPort(config.metrics.listen).port}`]);
    assert.equal(parseHostPort(config.metrics.listen).host, '0.0.0.0', 'metrics reachable from the prometheus container');
  });

  it('postfix accepts mail from the compose network and listens where the config sends it', () => {
    const dockerfile = fs.readFileSync(path.join(DEPLOY, 'compose/postfix/Dockerfile'), 'utf8');
    const subnet = compose.networks.mail.ipam.config[0]!.subnet;
    assert.match(dockerfile, new RegExp(`'mynetworks = [^']*${subnet.replaceAll('.', '\\.')}`));
    assert.match(dockerfile, /postconf -M '10025\/inet = 10025 inet n - n - - smtpd'/);
    assert.match(dockerfile, /^FROM debian:bookworm-slim$/m);
  });

  it('prometheus gets alerts.yml next to prometheus.yml; grafana gets the datasource and the dashboard where the provider looks', () => {
    const pm = mounts('prometheus');
    assert.deepEqual(pm.map((m) => [path.basename(m.source), m.target]), [
      ['prometheus.yml', '/etc/prometheus/prometheus.yml'],
      ['alerts.yml', '/etc/prometheus/alerts.yml'],
    ]);
    const gm = mounts('grafana');
    const provisioning = gm.find((m) => m.target === '/etc/grafana/provisioning');
    assert.ok(provisioning);
    const dashboard = gm.find((m) => m.source.endsWith('postern.json'));
    assert.ok(dashboard);
    const [provider] = documents<GrafanaProvider>(path.join(hostPath(provisioning.source), 'dashboards/postern.yaml'));
    assert.equal(path.dirname(dashboard.target), provider?.providers[0]?.options.path);
    const [datasources] = documents<GrafanaDatasources>(path.join(hostPath(provisioning.source), 'datasources/prometheus.yaml'));
    const url = new URL(datasources?.datasources[0]?.url ?? '');
    assert.ok(url.hostname in services, `datasource host ${url.hostname} is a compose service`);
    assert.equal(url.port, '9090');
    assert.equal(services.grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, dashboard.target);
  });
});

describe('deploy/kubernetes', () => {
  const dir = path.join(DEPLOY, 'kubernetes');
  const kustomization = documents<Kustomization>(path.join(dir, 'kustomization.yaml'))[0]!;
  const resources = kustomization.resources;
  const all = resources.flatMap((r) => documents<K8sObject>(path.join(dir, r)));
  const find = <T extends K8sObject>(kind: string, name?: string): T => {
    const found = all.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
    assert.equal(found.length, 1, `${kind} ${name ?? ''}: ${found.length} found`);
    return found[0] as T;
  };
  const deployment = find<Deployment>('Deployment', 'postern');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0]!;
  const port = (name: string): number => {
    const p = container.ports.find((q) => q.name === name);
    assert.ok(p, `no container port named ${name}`);
    return p.containerPort;
  };
  const config = postern(find('ConfigMap', 'postern-config').data?.['postern.yaml'] ?? '', 'k8s-postern.yaml');

  it('kustomization lists every manifest of the folder, each parsing with the expected kind', () => {
    const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
    assert.deepEqual([...resources].sort(), files);
    assert.deepEqual(all.map((d) => d.kind).sort(), ['ConfigMap', 'ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'PodDisruptionBudget', 'Service', 'Service']);
    for (const d of all) assert.ok(typeof d.apiVersion === 'string' && typeof d.metadata?.name === 'string', `${d.kind}: apiVersion and metadata.name`);
    assert.equal(kustomization.namespace, find('Namespace').metadata.name);
  });

  it('the ConfigMap config is valid; ports, mounts and --config agree with it', () => {
    assert.equal(parseHostPort(config.listen[0]!).port, port('smtp'));
    assert.equal(parseHostPort(config.metrics.listen).port, port('metrics'));
    const mountOf = (volume: string | undefined): string | undefined => container.volumeMounts.find((m) => m.name === volume)?.mountPath;
    const volumeFor = (configMapName: string): string | undefined => pod.volumes.find((v) => v.configMap.name === configMapName)?.name;
    assert.equal(mountOf(volumeFor('postern-policies')), config.policies);
    const args = container.args;
    assert.equal(args[args.indexOf('--config') + 1], `${mountOf(volumeFor('postern-config'))}/postern.yaml`);
    for (const v of pod.volumes) find('ConfigMap', v.configMap.name);
  });

  it('the policies ConfigMap is policies/00-defaults.yaml verbatim and loads as a policy set', async () => {
    const data = find('ConfigMap', 'postern-policies').data ?? {};
    assert.equal(data['00-defaults.yaml'], fs.readFileSync(path.join(ROOT, 'policies/00-defaults.yaml'), 'utf8'));
    const policyDir = fs.mkdtempSync(path.join(tmp, 'policies-'));
    for (const [name, text] of Object.entries(data)) fs.writeFileSync(path.join(policyDir, name), text);
    const ruleSet = await loadPolicies(policyDir);
    assert.ok(ruleSet.rules.length >= 3);
  });

  it('probes /readyz and /healthz on the metrics port; the grace period outlasts the drain', () => {
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.shutdown.drainTimeoutMs,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} vs drainTimeoutMs ${config.shutdown.drainTimeoutMs}`);
    assert.equal(container.lifecycle?.preStop, undefined, 'SIGTERM drains by itself (see the comment in deployment.yaml)');
  });

  it('runs as the image user, non-root, with no capability, on an unprivileged port', () => {
    const dockerfile = fs.readFileSync(path.join(DEPLOY, 'docker/Dockerfile'), 'utf8');
    const uid = Number(/^USER (\d+):(\d+)$/m.exec(dockerfile)?.[1]);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, uid);
    assert.deepEqual(container.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.ok(port('smtp') >= 1024, 'no NET_BIND_SERVICE: the pod must listen above 1023');
  });

  it('the LoadBalancer Service sends port 25 to the pods with PROXY v2, and the config trusts it', () => {
    const svc = find<Service>('Service', 'postern');
    const labels = deployment.spec.template.metadata.labels;
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.equal(svc.spec.externalTrafficPolicy, 'Local');
    assert.equal(svc.metadata.annotations?.['service.beta.kubernetes.io/aws-load-balancer-proxy-protocol'], '*');
    assert.deepEqual(svc.spec.ports.map((p) => [p.port, p.targetPort]), [[25, 'smtp']]);
    assert.ok(config.proxyProtocol.trusted.length > 0, 'PROXY headers from the balancer must be trusted');
    for (const s of [svc, find<Service>('Service', 'postern-metrics')]) {
      for (const [k, v] of Object.entries(s.spec.selector)) assert.equal(labels[k], v, `${s.metadata.name} selector ${k}`);
      for (const p of s.spec.ports) port(p.targetPort);
    }
    assert.deepEqual(deployment.spec.selector.matchLabels, find<Pdb>('PodDisruptionBudget').spec.selector.matchLabels);
  });

  it('the HPA scales this Deployment on CPU, from at least the PDB minimum plus one', () => {
    const hpa = find<Hpa>('HorizontalPodAutoscaler');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    assert.equal(hpa.spec.metrics[0]?.resource.name, 'cpu');
    assert.ok(hpa.spec.minReplicas > find<Pdb>('PodDisruptionBudget').spec.minAvailable);
    assert.ok(container.resources.requests.cpu, 'CPU utilisation needs a CPU request');
  });
});

describe('deploy/docker/Dockerfile', () => {
  it('copies only paths that exist in the repository', () => {
    const text = fs.readFileSync(path.join(DEPLOY, 'docker/Dockerfile'), 'utf8');
    const copies = [...text.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) => m[1]!.trim().split(/\s+/).slice(0, -1)).flat();
    assert.ok(copies.length >= 4);
    for (const src of copies) assert.ok(fs.existsSync(path.join(ROOT, src)), `COPY ${src}: no such path`);
  });
});
