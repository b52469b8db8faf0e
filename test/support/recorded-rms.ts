/**
 * The set-up the producer SDK's request-level tests share: a real RMS, a
 * {@link RecordingProxy} in front of it that records each exchange, a RabbitMQ queue
 * watcher, and topics made fresh per test whose queues are deleted at the end.
 */
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { QueueWatcher } from './rabbitmq.js';
import { RecordingProxy } from './recording-proxy.js';
import { type TestServer, startTestServer } from './rms-server.js';

/** What {@link recordedRms} sets up; read it inside tests, after the suite's `before`. */
export interface RecordedRms {
  readonly rms: TestServer;
  readonly proxy: RecordingProxy;
  readonly watcher: QueueWatcher;
  /** A topic named `<name>.<random>`, whose queues are deleted after the suite. */
  freshTopic(name: string): string;
}

/**
 * Registers `before` and `after` hooks in the calling suite that start RMS, its recording
 * proxy and a queue watcher, and stop them (deleting the fresh topics' queues).
 */
export function recordedRms(): RecordedRms {
  let rms: TestServer | undefined;
  let proxy: RecordingProxy | undefined;
  let watcher: QueueWatcher | undefined;
  const topics: string[] = [];
  before(async () => {
    rms = await startTestServer();
    proxy = await RecordingProxy.start(rms.baseUrl);
    watcher = await QueueWatcher.open();
  });
  after(async () => {
    await proxy?.close();
    await rms?.stop();
    await watcher?.deleteQueues(topics).catch(() => undefined);
    await watcher?.close();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is read before the suite's before hook ran`);
    return value;
  };
  return {
    get rms() {
      return started(rms, 'rms');
    },
    get proxy() {
      return started(proxy, 'proxy');
    },
    get watcher() {
      return started(watcher, 'watcher');
    },
    freshTopic(name) {
      const topic = `${name}.${randomUUID().slice(0, 8)}`;
      topics.push(topic);
      return topic;
    },
  };
}
