/**
 * docker-compose.yml cannot be run here (no Docker), so it is checked instead: against the
 * Compose specification's JSON schema (the copy dclint ships), and against the code it
 * configures: every variable is one the program reads and every value parses as the
 * program would parse it, every URL names a service of the file on the port that service
 * listens on, published ports are the ones the SDK's and RMS's defaults use, the app
 * registry's check URL and tokens match the example services, and start order waits on
 * health checks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, parseAppRegistry } from '@rms/message-service';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
}

function readYaml(file: string): ComposeFile {
  return parse(readFileSync(join(ROOT, file), 'utf8'), { merge: true }) as ComposeFile;
}

const base = readYaml('docker-compose.yml');
const postgresOverride = readYaml('docker-compose.postgres.yml');
const services = base.services;

/** The port each third-party image listens on (its documented default). */
const IMAGE_PORTS: Record<string, number[]> = {
  mongo: [27017],
  postgres: [5432],
  rabbitmq: [5672, 15672],
  redis: [6379],
  zookeeper: [2181],
};

/** The environment variables a service's main module reads: `process.env['NAME']`, `required('NAME')`. */
function variablesReadBy(mainSource: string): Set<string> {
  const source = readFileSync(join(ROOT, mainSource), 'utf8');
  return new Set([...source.matchAll(/process\.env\['([A-Z0-9_]+)'\]|required\('([A-Z0-9_]+)'\)/g)].map((match) => (match[1] ?? match[2]) as string));
}

/** The example services: their entry point and the variable naming their port. */
const EXAMPLES = {
  'order-service': { main: 'services/order-service/src/main.ts', portVariable: 'ORDER_PORT', requiredVariables: ['RMS_TOKEN', 'RMS_CHECK_SECRET'] },
  'inventory-service': { main: 'services/inventory-service/src/main.ts', portVariable: 'INVENTORY_PORT', requiredVariables: ['RMS_TOKEN'] },
} as const;

/** The port service `name` listens on inside its container. */
function containerPorts(name: string): number[] {
  const service = services[name];
  assert.ok(service, `no service ${name}`);
  if (name === 'rms') return [Number(service.environment?.['PORT'])];
  if (name in EXAMPLES) return [Number(service.environment?.[EXAMPLES[name as keyof typeof EXAMPLES].portVariable])];
  const repository = (service.image ?? '').split(':')[0] as string;
  const ports = IMAGE_PORTS[repository];
  assert.ok(ports, `no known port for image ${service.image}`);
  return ports;
}

/** Asserts that `url` (or `host:port`) names a service of the file on a port it listens on. */
function assertReachesService(where: string, url: string): void {
  const { hostname, port } = new URL(url.includes('://') ? url : `tcp://${url}`);
  assert.ok(services[hostname], `${where}: ${url} names host ${hostname}, which is not a service of docker-compose.yml`);
  const defaults: Record<string, number> = { 'http:': 80 };
  const portNumber = Number(port || defaults[new URL(url.includes('://') ? url : `tcp://${url}`).protocol]);
  assert.ok(containerPorts(hostname).includes(portNumber), `${where}: ${url} uses port ${portNumber}, but ${hostname} listens on ${containerPorts(hostname).join(', ')}`);
}

/** Why the docker-compose check cannot run here, or false when it can. */
function dockerComposeMissing(): string | false {
  const probe = spawnSync('docker-compose', ['version'], { encoding: 'utf8', timeout: 10_000 });
  return probe.status === 0 ? false : 'docker-compose is not installed (Debian: apt-get install docker-compose); the schema test still checks the files';
}

/** The app registry mounted into RMS, read from the repository. */
function mountedAppRegistry(service: ComposeService): { hostPath: string; containerPath: string } {
  const volume = (service.volumes ?? []).find((entry) => entry.includes('apps'));
  assert.ok(volume, 'RMS gets no app registry volume');
  const [hostPath = '', containerPath = ''] = volume.split(':');
  return { hostPath: join(ROOT, hostPath), containerPath };
}

describe('docker-compose.yml', () => {
  test('both compose files are valid under the Compose specification schema', () => {
    const require = createRequire(import.meta.url);
    const schemaPath = join(dirname(require.resolve('dclint/package.json')), 'schemas/compose.schema.json');
    // Formats (durations, ports) are the schema's annotations; the checks below cover values.
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
    // The schema is draft-07 (Ajv's default) but names it by an https URL Ajv does not know.
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
    assert.match(String(_draft), /draft-07/);
    const validate = ajv.compile(schema);
    for (const file of ['docker-compose.yml', 'docker-compose.postgres.yml']) {
      // The schema sees the file as written, extension fields and merge keys resolved.
      assert.ok(validate(readYaml(file)), `${file}: ${ajv.errorsText(validate.errors, { separator: '\n' })}`);
    }
  });

  test('docker-compose itself accepts both files, alone and merged', { skip: dockerComposeMissing() }, () => {
    for (const files of [['docker-compose.yml'], ['docker-compose.yml', 'docker-compose.postgres.yml']]) {
      const args = [...files.flatMap((file) => ['-f', file]), 'config', '-q'];
      const result = spawnSync('docker-compose', args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
      assert.equal(result.status, 0, `docker-compose ${args.join(' ')}: ${result.stderr}`);
    }
  });

  test('it has no top-level name, which docker-compose 1.29 (Debian 12) refuses', () => {
    assert.equal(base.name, undefined);
    assert.equal(postgresOverride.name, undefined);
  });

  test('it runs RabbitMQ with the management UI, Redis, ZooKeeper, MongoDB, PostgreSQL, RMS and both example services', () => {
    for (const name of ['rabbitmq', 'redis', 'zookeeper', 'mongodb', 'postgres', 'rms', 'order-service', 'inventory-service']) {
      assert.ok(services[name], `no service ${name}`);
    }
    assert.match(services['rabbitmq']?.image ?? '', /-management$/);
    assert.ok((services['rabbitmq']?.ports ?? []).includes('15672:15672'), 'the management UI port is not published');
    // The SDK's Redis fallback pops with BLMPOP, a Redis 7 command.
    assert.ok(Number((services['redis']?.image ?? '').split(':')[1]) >= 7, 'the Redis image is older than 7');
  });

  test('RMS and the example services run the image the Dockerfile builds, whose Node.js satisfies the engines', () => {
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const nodeMajors = [...dockerfile.matchAll(/^FROM node:(\d+)/gm)].map((match) => match[1]);
    assert.ok(nodeMajors.length > 0 && nodeMajors.every((major) => major === /\d+/.exec(engines)?.[0]), `Dockerfile bases ${nodeMajors.join(', ')} vs engines ${engines}`);
    for (const name of ['rms', 'order-service', 'inventory-service']) {
      const service = services[name];
      assert.equal(service?.build?.dockerfile, 'Dockerfile', `${name} is not built from the Dockerfile`);
      const entry = service?.command?.at(-1) ?? '';
      const source = entry.replace('/dist/', '/src/').replace(/\.js$/, '.ts');
      assert.ok(existsSync(join(ROOT, source)), `${name} runs ${entry}, which no source builds`);
    }
    for (const [name, service] of Object.entries(services)) {
      if (service.build) continue;
      assert.match(service.image ?? '', /^[a-z0-9.-]+:[0-9]/, `${name}: pin the image to a version, not latest`);
    }
  });

  for (const [file, overrides] of [
    ['docker-compose.yml', {}],
    ['docker-compose.postgres.yml', postgresOverride.services['rms']?.environment ?? {}],
  ] as const) {
    test(`RMS's environment under ${file} names only variables RMS reads, and its configuration loads`, () => {
      const environment = { ...services['rms']?.environment, ...overrides };
      const unknown = Object.keys(environment).filter((name) => !CONFIG_VARIABLES.includes(name));
      assert.deepEqual(unknown, [], `variables RMS does not read: ${unknown.join(', ')}`);
      const registry = mountedAppRegistry(services['rms'] as ComposeService);
      assert.equal(environment['RMS_APPS'], registry.containerPath, 'RMS_APPS is not the mounted registry');
      const config = loadConfig({ ...environment, RMS_APPS: registry.hostPath });
      for (const url of [config.storeUrl, config.rabbitmqUrl, config.redisUrl, config.zkConnect]) assertReachesService('rms', url);
      assert.equal(config.port, containerPorts('rms')[0]);
    });
  }

  test('the PostgreSQL variant points RMS at PostgreSQL and waits for it', () => {
    const rms = postgresOverride.services['rms'];
    assert.match(rms?.environment?.['STORE_URL'] ?? '', /^postgres:\/\//);
    assert.equal(rms?.depends_on?.['postgres']?.condition, 'service_healthy');
  });

  for (const [name, example] of Object.entries(EXAMPLES)) {
    test(`${name}'s environment names only variables it reads, with URLs of the file's services and RMS's registered token`, () => {
      const environment = services[name]?.environment ?? {};
      const read = variablesReadBy(example.main);
      const unknown = Object.keys(environment).filter((variable) => !read.has(variable));
      assert.deepEqual(unknown, [], `variables ${name} does not read: ${unknown.join(', ')}`);
      for (const variable of example.requiredVariables) assert.ok(environment[variable], `${name} needs ${variable}`);
      for (const [variable, value] of Object.entries(environment)) {
        if (/_URL$|^ZK_CONNECT$/.test(variable)) assertReachesService(`${name} ${variable}`, value);
      }
      const registry = parseAppRegistry(mountedAppRegistry(services['rms'] as ComposeService).hostPath);
      const app = registry.find((registered) => registered.token === environment['RMS_TOKEN']);
      assert.ok(app, `${name}'s RMS_TOKEN is not registered in the mounted app registry`);
      assert.ok(app.roles.includes(name === 'order-service' ? 'producer' : 'consumer'), `${name}'s app lacks its role`);
      if (name === 'order-service') assert.equal(environment['RMS_CHECK_SECRET'], app.secret, 'the check secret differs from the registered one');
    });
  }

  test("the registered producer's check URL reaches order-service on the path it serves check-backs on", () => {
    const registry = JSON.parse(readFileSync(mountedAppRegistry(services['rms'] as ComposeService).hostPath, 'utf8')) as { app: string; checkUrl?: string }[];
    const orders = registry.find((app) => app.app === 'orders');
    assert.ok(orders?.checkUrl);
    assertReachesService('apps.example.json orders.checkUrl', orders.checkUrl);
    assert.equal(new URL(orders.checkUrl).hostname, 'order-service');
    const route = new URL(orders.checkUrl).pathname;
    assert.ok(readFileSync(join(ROOT, 'services/order-service/src/order-service.ts'), 'utf8').includes(`app.post('${route}'`), `order-service serves no POST ${route}`);
  });

  test('every published port is the one the service listens on, on the same host port, and covers the default URLs of RMS and the SDK', () => {
    const published = new Set<number>();
    for (const [name, service] of Object.entries(services)) {
      for (const mapping of service.ports ?? []) {
        const [host, container] = mapping.split(':').map(Number) as [number, number];
        assert.equal(host, container, `${name} publishes ${mapping}: SDK users expect the service's own port`);
        assert.ok(containerPorts(name).includes(container), `${name} publishes ${container}, but listens on ${containerPorts(name).join(', ')}`);
        published.add(host);
      }
    }
    const defaults = loadConfig({ STORE_URL: 'postgres://127.0.0.1:5432/x', RMS_APPS: join(ROOT, 'config/apps.example.json') });
    for (const url of [defaults.rabbitmqUrl, defaults.redisUrl, `tcp://${defaults.zkConnect}`, `http://127.0.0.1:${defaults.port}`]) {
      assert.ok(published.has(Number(new URL(url).port)), `${url} (a default) is not published`);
    }
  });

  test('every service has a health check, and every dependency waits for it', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    for (const [name, service] of Object.entries({ ...services, ...postgresOverride.services })) {
      const built = services[name]?.build !== undefined;
      assert.ok(service.healthcheck || (built && /^HEALTHCHECK /m.test(dockerfile)) || name in postgresOverride.services, `${name} has no health check`);
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        assert.equal(condition, 'service_healthy', `${name} starts before ${dependency} is healthy`);
        assert.ok(services[dependency], `${name} depends on ${dependency}, which is not a service`);
      }
    }
  });
});
