/**
 * How `RedisListSource` logs an outage, on scripted connections (no Redis): once when it
 * starts and once when it ends, even when the workers come back at different times.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { type RedisClient, RedisListSource, type SdkLogger } from '@rms/client-sdk';

/** What one BRPOP of a worker does: fail, or answer "nothing popped". */
type Step = () => Promise<[string, string] | null>;

const fail = (): Promise<never> => Promise.reject(new Error('read ECONNRESET'));
const idle = async (): Promise<null> => {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return null;
};

/**
 * A connection whose BRPOPs follow `steps`, then answer "nothing popped" for good; the
 * template hands each of the source's connections (named `…-0`, `…-1`, `…-control`) the
 * steps of its name.
 */
function scriptedTemplate(stepsByWorker: Record<string, Step[]>): RedisClient {
  const connection = (steps: Step[]): RedisClient =>
    ({
      status: 'ready',
      isCluster: false,
      on: () => undefined,
      once: () => undefined,
      off: () => undefined,
      connect: async () => undefined,
      disconnect: () => undefined,
      quit: async () => 'OK',
      brpop: () => (steps.shift() ?? idle)(),
    }) as unknown as RedisClient;
  return {
    duplicate: (options?: { connectionName?: string }) => connection(stepsByWorker[String(options?.connectionName).split('-').at(-1) ?? ''] ?? []),
  } as unknown as RedisClient;
}

function recordingLogger(): SdkLogger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (_obj: object, msg?: string) => void lines.push(`${level}: ${msg ?? ''}`);
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const count = (lines: string[], pattern: RegExp) => lines.filter((line) => pattern.test(line)).length;

/** A source of two workers on the scripted connections, reconnecting within milliseconds, stopped after the test. */
async function startedSource(t: TestContext, redis: RedisClient, logger: SdkLogger): Promise<void> {
  const source = new RedisListSource({ redis, topic: 'outage.log', workers: 2, reconnectDelayMs: 1, maxReconnectDelayMs: 2, logger }, () => undefined);
  t.after(() => source.stop());
  await source.start();
}

test('a worker that fails once more after another one popped again is the same outage: its start and end are logged once', async (t) => {
  // Worker 0 pops again first; worker 1's connection, accepted during the cut, is reset
  // only after that (the fault proxy's cut: CI logged the outage's end twice).
  let worker0Back!: () => void;
  const worker0IsBack = new Promise<void>((resolve) => (worker0Back = resolve));
  const lateReset: Step = async () => {
    await worker0IsBack;
    await new Promise((resolve) => setTimeout(resolve, 10));
    return fail();
  };
  const logger = recordingLogger();
  await startedSource(t, scriptedTemplate({
        '0': [fail, fail, async () => (worker0Back(), idle())],
        '1': [fail, lateReset],
      }), logger);
  // Both workers back: each has made its scripted calls and popped (nothing) since.
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(count(logger.lines, /warn: cannot pop/), 1, `the outage's start, once: ${JSON.stringify(logger.lines)}`);
  assert.equal(count(logger.lines, /info: popping the Redis fallback lists again/), 1, `its end, once: ${JSON.stringify(logger.lines)}`);
  assert.ok(count(logger.lines, /debug: Redis still unreachable/) >= 3, 'the other failures are debug lines');
});

test('a worker that was popping and fails after the outage ended starts a new one, logged again', async (t) => {
  let recovered = 0;
  const back: Step = async () => {
    recovered += 1;
    return idle();
  };
  const afterBoth: Step = async () => {
    while (recovered < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    return fail();
  };
  const logger = recordingLogger();
  await startedSource(t, scriptedTemplate({ '0': [fail, back, afterBoth], '1': [fail, back] }), logger);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(count(logger.lines, /warn: cannot pop/), 2, `two outages: ${JSON.stringify(logger.lines)}`);
  assert.equal(count(logger.lines, /info: popping the Redis fallback lists again/), 2, `each ended: ${JSON.stringify(logger.lines)}`);
});
