/**
 * The SDK as a stranger gets it: `npm pack` of `client-sdk` (built beforehand, as CI does),
 * installed from the tarball into a scratch project outside the repository next to the
 * current ioredis major, then a producer and a consumer compiled with strict TypeScript
 * (NodeNext) as an ES module project and as a CommonJS one, and run against a real RMS.
 * The same scratch project type-checks every TypeScript block of the docs, and the packed
 * package is linted by publint and @arethetypeswrong/cli.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { extractTypeScriptBlocks } from '../support/markdown-snippets.js';
import { TEST_RABBITMQ_URL } from '../support/rabbitmq.js';
import { TEST_APPS, type TestServer, startTestServer } from '../support/rms-server.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixture/', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const BIN = join(ROOT, 'node_modules/.bin');
const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** What a stranger's tsconfig says: strict, NodeNext, and the libraries' declarations checked too. */
const STRICT_NODENEXT = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    outDir: 'dist',
  },
};

/** Markdown files whose TypeScript blocks must compile. */
async function documentedMarkdown(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`);
  const readmes = ['README.md', 'client-sdk/README.md', 'services/order-service/README.md', 'services/inventory-service/README.md', 'services/message-service/README.md'];
  return [...readmes.filter((path) => existsSync(join(ROOT, path))), ...docs];
}

/** Runs a command; on failure the error carries its output. */
async function sh(file: string, args: string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } });
    return stdout;
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${stdout}\n${stderr}`, { cause: error });
  }
}

/** Runs a compiled script with `env` and parses the one JSON line it prints. */
function runScript(script: string, env: Record<string, string>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${script} exited with ${code ?? signal}:\n${out}\n${err}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as Record<string, unknown>);
      } catch {
        reject(new Error(`${script} printed no JSON line:\n${out}\n${err}`));
      }
    });
  });
}

describe('the packed client SDK, installed in a project outside the repository', () => {
  let scratch: string;
  let tarball: string;
  let sdkVersion: string;
  let rms: TestServer;

  before(async () => {
    assert.ok(existsSync(join(ROOT, 'client-sdk/dist/index.js')), 'client-sdk is not built: run `npm run build` first');
    sdkVersion = (JSON.parse(await readFile(join(ROOT, 'client-sdk/package.json'), 'utf8')) as { version: string }).version;
    scratch = await mkdtemp(join(tmpdir(), 'rms-sdk-package-'));
    const packed = JSON.parse(await sh('npm', ['pack', '--json', '--pack-destination', scratch], join(ROOT, 'client-sdk'))) as [{ filename: string }];
    tarball = join(scratch, packed[0].filename);
    const typesNode = (JSON.parse(await readFile(join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
    await writeFile(join(scratch, 'package.json'), JSON.stringify({ name: 'stranger', private: true }));
    // The application's own drivers: the current ioredis major (the SDK's own tests use the
    // previous one) and amqplib, as peers of the SDK.
    await sh(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, 'ioredis@^6', 'amqplib@^2.3.1', 'express@^5', '@types/express@^5', `@types/node@${typesNode}`],
      scratch,
      120_000,
    );
    for (const kind of ['esm', 'cjs'] as const) {
      const dir = join(scratch, kind);
      await mkdir(dir);
      await writeFile(join(dir, 'package.json'), JSON.stringify({ type: kind === 'esm' ? 'module' : 'commonjs' }));
      // The ES module project also checks every declaration file (the SDK's included); the
      // CommonJS one skips that, as most projects do, to keep the test quick.
      const compilerOptions = { ...STRICT_NODENEXT.compilerOptions, skipLibCheck: kind === 'cjs' };
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.ts'] }));
      for (const file of ['producer.ts', 'consumer.ts']) await copyFile(join(FIXTURE, file), join(dir, file));
    }
    rms = await startTestServer();
  });

  after(async () => {
    await rms?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('the tarball ships the compiled code, its declarations, the sources its maps point at, and a README', async () => {
    const listing = await sh('tar', ['-tzf', tarball], scratch);
    for (const file of ['package/README.md', 'package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/index.js.map', 'package/src/index.ts']) {
      assert.ok(listing.split('\n').includes(file), `${file} is not in the tarball`);
    }
    const installed = join(scratch, 'node_modules/@rms/client-sdk');
    const map = JSON.parse(await readFile(join(installed, 'dist/index.js.map'), 'utf8')) as { sources: string[] };
    for (const source of map.sources) assert.ok(existsSync(join(installed, 'dist', source)), `the map's source ${source} is not installed`);
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    assert.match(manifest['peerDependencies']?.['ioredis'] ?? '', /\^5.*\^6/);
    assert.equal(manifest['dependencies']?.['ioredis'], undefined, 'ioredis must be the application\'s, not a copy nested in the SDK');
    assert.equal(existsSync(join(installed, 'node_modules/ioredis')), false);
  });

  for (const kind of ['esm', 'cjs'] as const) {
    test(`a strict ${kind === 'esm' ? 'ES module' : 'CommonJS'} project compiles a producer and a consumer against it, and they deliver a message through RMS`, async () => {
      const dir = join(scratch, kind);
      await sh(process.execPath, [TSC, '-p', '.'], dir);
      const topic = `pkg.${kind}.${Date.now()}`;
      const common = { RMS_URL: rms.baseUrl, TOPIC: topic };
      const sent = await runScript(join(dir, 'dist/producer.js'), { ...common, RMS_TOKEN: TEST_APPS.orders.token, ORDER_ID: `${kind}-1` });
      assert.deepEqual(
        { messageId: sent['messageId'], recordedMessageId: sent['recordedMessageId'], confirmed: sent['confirmed'], status: sent['status'], sdkVersion: sent['sdkVersion'] },
        { messageId: `order-${kind}-1`, recordedMessageId: `order-${kind}-1`, confirmed: true, status: 'SENDING', sdkVersion },
      );
      const received = await runScript(join(dir, 'dist/consumer.js'), {
        ...common,
        RMS_TOKEN: TEST_APPS.inventory.token,
        AMQP_URL: TEST_RABBITMQ_URL,
        REDIS_URL,
        GROUP: `pkg-${kind}-${Date.now()}`,
      });
      assert.deepEqual(received, { id: sent['id'], messageId: `order-${kind}-1`, orderId: `${kind}-1`, acked: 1 });
      const stored = await rms.call('ops', 'GET', `/v1/messages/${String(sent['id'])}`);
      assert.equal(stored.body.status, 'COMPLETED');
    });
  }

  test('every TypeScript block in the README files and docs/ compiles against the installed packages', async () => {
    const dir = join(scratch, 'doc-snippets');
    await mkdir(dir);
    await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...STRICT_NODENEXT.compilerOptions, skipLibCheck: true, noEmit: true }, include: ['*.ts'] }));
    await copyFile(join(FIXTURE, 'doc-snippets.d.ts'), join(dir, 'doc-snippets.d.ts'));
    let blocks = 0;
    for (const markdown of await documentedMarkdown()) {
      for (const block of extractTypeScriptBlocks(await readFile(join(ROOT, markdown), 'utf8'))) {
        // The file name says where the block is, so a compiler error points at the docs.
        const name = `${markdown.replaceAll('/', '__')}__line-${block.line}.ts`;
        // `export {}` makes a block without imports a module too, so blocks never share names.
        await writeFile(join(dir, name), `${block.code}\nexport {};\n`);
        blocks += 1;
      }
    }
    assert.ok(blocks >= 5, `found only ${blocks} TypeScript blocks`);
    await sh(process.execPath, [TSC, '-p', '.'], dir);
  });

  test('publint and @arethetypeswrong/cli report nothing about the package', async () => {
    const publint = await sh(join(BIN, 'publint'), ['client-sdk'], ROOT);
    assert.match(publint, /All good!/);
    // The package is ESM-only on purpose: CommonJS projects load it with require(esm), which
    // Node.js has unflagged since 20.19 (the SDK's `engines`), and TypeScript type-checks
    // that under NodeNext (the CommonJS test above does it). attw's "node16 (from CJS)" mode
    // predates require(esm) and would flag every ESM-only package, so the esm-only profile.
    await sh(join(BIN, 'attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii'], ROOT);
  });
});
