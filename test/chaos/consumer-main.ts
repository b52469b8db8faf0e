/**
 * The chaos run's consumer, a process of its own so that it can really crash: it
 * subscribes with the SDK on RabbitMQ and on the Redis fallback (behind the ZooKeeper
 * degrade switch), and reports to the runner over IPC each handler it finishes, each
 * answer it got from RMS, and the crash it was told to have.
 *
 * Started by {@link ConsumerProcess}; its settings come in `CHAOS_CONSUMER` (JSON).
 */
import { ZooKeeperDegradeSwitch, subscribe } from '@rms/client-sdk';
import { recordRmsAnswers } from './answer-log.js';
import type { ConsumerCommand, ConsumerReport, ConsumerSettings } from './consumer-process.js';

const settings = JSON.parse(process.env['CHAOS_CONSUMER'] ?? '') as ConsumerSettings;

function report(message: ConsumerReport): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send?.(message, undefined, {}, () => resolve());
  });
}

recordRmsAnswers([settings.rmsUrl], (answer) => void report({ type: 'answer', answer }));

let crashInNextHandler = false;
/** What to close on the runner's `close`, in order. */
const closers: (() => Promise<void>)[] = [];
process.on('message', (command: ConsumerCommand) => {
  if (command.type === 'crash-mid-handler') crashInNextHandler = true;
  if (command.type === 'close') {
    void (async () => {
      for (const close of closers) await close();
      process.exit(0);
    })();
  }
});
// The runner going away must not leave this process behind.
process.on('disconnect', () => process.exit(0));

const degradeSwitch = new ZooKeeperDegradeSwitch({
  connect: settings.zkConnect,
  root: settings.zkRoot,
  sessionTimeoutMs: settings.zkSessionTimeoutMs,
});
await degradeSwitch.start();

const subscription = await subscribe<{ key: string }>(
  settings.topic,
  async (delivery) => {
    if (crashInNextHandler) {
      // Mid-handler: the delivery was taken and work begun, nothing acked.
      await report({ type: 'crashed', key: delivery.payload.key, id: delivery.id });
      process.kill(process.pid, 'SIGKILL');
    }
    await new Promise((resolve) => setTimeout(resolve, settings.handlerMs));
    await report({ type: 'handled', key: delivery.payload.key, id: delivery.id, transport: delivery.transport, attempt: delivery.attempt });
  },
  {
    rms: { url: settings.rmsUrl, token: settings.token, timeoutMs: settings.clientTimeoutMs },
    amqpUrl: settings.amqpUrl,
    group: 'chaos',
    concurrency: 16,
    heartbeatIntervalMs: settings.heartbeatIntervalMs,
    fallback: { degradeSwitch, redis: settings.redisUrl, workers: 2 },
  },
);
closers.push(() => subscription.close(), () => degradeSwitch.close());
await report({ type: 'ready' });
