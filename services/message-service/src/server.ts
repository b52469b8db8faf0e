/**
 * The composition root: builds the store, the transport, the dispatcher, the check-back
 * and redelivery loops, retention, alerts and the HTTP app from the configuration, starts
 * them, and shuts everything down gracefully.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type DegradeSwitch,
  FailoverTransport,
  RabbitMqTransport,
  RedisListTransport,
  type Transport,
  ZooKeeperDegradeSwitch,
} from '@rms/client-sdk';
import { AlertBatcher } from './alerts/alert-batcher.js';
import type { NotificationSink } from './alerts/notifier.js';
import { WebhookSink } from './alerts/webhook-sink.js';
import { CheckBackWorker } from './application/check-back.js';
import { Dispatcher } from './application/dispatcher.js';
import { HistoryRecorder } from './application/history-recorder.js';
import { MessageStats } from './application/message-stats.js';
import { reportDead } from './application/report-dead.js';
import { DueLoop } from './application/due-loop.js';
import { MessageService } from './application/message-service.js';
import { RetentionSweeper } from './application/retention.js';
import type { CheckBackClient } from './check-back/check-back-client.js';
import { HttpCheckBackClient } from './check-back/http-check-back-client.js';
import { deliveryScheduleResolver } from './config/topic-schedules.js';
import { Metrics } from './observability/metrics.js';
import { AppRegistry } from './config/app-registry.js';
import type { RmsConfig } from './config/config.js';
import { DependencyUnavailableError } from './domain/errors.js';
import { createHttpApp } from './http/http-app.js';
import { RequestDrain } from './http/request-drain.js';
import { createLogger, type Logger } from './observability/logger.js';
import { BoundedMessageStore } from './store/bounded-message-store.js';
import { CoalescingMessageStore } from './store/coalescing-message-store.js';
import { createMessageStore } from './store/create-message-store.js';
import type { MessageStore } from './store/message-store.js';

/** How an `RmsServer` is started. */
export interface RmsServerOptions {
  config: RmsConfig;
  /** @defaultValue a pino logger at `config.logLevel` */
  logger?: Logger;
  /** @defaultValue the adapter `config.storeUrl` selects */
  store?: MessageStore;
  /**
   * @defaultValue RabbitMQ on `config.rabbitmqUrl`, failing over to the Redis lists on
   * `config.redisUrl` behind the ZooKeeper degrade switch at `config.zkConnect`
   */
  transport?: Transport;
  /** @defaultValue HTTP check-backs with `config.checkTimeoutMs` */
  checkBackClient?: CheckBackClient;
  /** Sinks for grouped alerts besides the configured webhooks. */
  notificationSinks?: NotificationSink[];
  /**
   * How long start-up keeps retrying a store that is not reachable yet (containers start
   * in any order) before giving up.
   * @defaultValue 60000
   */
  storeStartupTimeoutMs?: number;
}

/** Initialises the store, retrying while it is unavailable, until `timeoutMs`. */
async function initStore(store: MessageStore, logger: Logger, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await store.init();
      return;
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError) || Date.now() >= deadline) throw error;
      const delayMs = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
      logger.warn({ err: error, attempt, delayMs }, `${store.kind} store not reachable yet; retrying`);
      await sleep(delayMs);
    }
  }
}

/** The default transport and its parts, for readiness reports and shutdown. */
interface FailoverParts {
  transport: FailoverTransport;
  rabbitmq: RabbitMqTransport;
  redis: RedisListTransport;
  degradeSwitch: ZooKeeperDegradeSwitch;
}

/** RabbitMQ, failing over to the Redis lists behind the ZooKeeper degrade switch (design section 7). */
async function createFailoverTransport(config: RmsConfig, logger: Logger): Promise<FailoverParts> {
  const rabbitmq = new RabbitMqTransport({
    url: config.rabbitmqUrl,
    queuePrefix: config.queuePrefix,
    queueType: config.queueType,
    confirmTimeoutMs: config.publishTimeoutMs,
    logger: logger.child({ part: 'rabbitmq' }),
  });
  const redis = new RedisListTransport({
    url: config.redisUrl,
    cluster: config.redis.cluster,
    waitReplicas: config.redis.waitReplicas,
    shards: config.failover.shards,
    logger: logger.child({ part: 'redis' }),
  });
  const degradeSwitch = new ZooKeeperDegradeSwitch({
    connect: config.zkConnect,
    root: config.zkRoot,
    sessionTimeoutMs: config.failover.zkSessionTimeoutMs,
    logger: logger.child({ part: 'zookeeper' }),
  });
  // Resolves within the connect timeout even with ZooKeeper down: RMS then acts on the
  // initial state (RabbitMQ) and keeps connecting in the background.
  await degradeSwitch.start();
  const transport = new FailoverTransport({
    primary: rabbitmq,
    fallback: redis,
    degradeSwitch,
    threshold: config.failover.threshold,
    probeIntervalMs: config.failover.probeIntervalMs,
    logger: logger.child({ part: 'failover' }),
  });
  return { transport, rabbitmq, redis, degradeSwitch };
}

/** What `/readyz` shows of the failover state. */
function failoverDetails(transport: FailoverTransport): Record<string, unknown> {
  const status = transport.status();
  return {
    mode: status.mode,
    consecutiveFailures: status.consecutiveFailures,
    locallyDegraded: status.locallyDegraded,
    degradeFlag: { ...status.degradeState },
  };
}

/** A running RMS server. */
export class RmsServer {
  /** The port it listens on (useful when configured with port 0). */
  readonly port: number;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly http: Server,
    private readonly drain: RequestDrain,
    private readonly parts: {
      store: MessageStore;
      transport: Transport;
      degradeSwitch: DegradeSwitch | undefined;
      dispatcher: Dispatcher;
      loops: DueLoop[];
      retention: RetentionSweeper;
      notifier: AlertBatcher;
      history: HistoryRecorder;
    },
    private readonly logger: Logger,
    private readonly shutdownGraceMs: number,
  ) {
    this.port = (http.address() as AddressInfo).port;
  }

  /** Initialises the store (creating or migrating its schema), starts the loops and listens. */
  static async start(options: RmsServerOptions): Promise<RmsServer> {
    const { config } = options;
    const logger = options.logger ?? createLogger(config.logLevel);
    const backingStore = options.store ?? (await createMessageStore(config.storeUrl, { retentionMs: config.retention.retentionMs }));
    await initStore(backingStore, logger, options.storeStartupTimeoutMs ?? 60_000);
    const coalescing = config.storeBatch.maxBatch > 1 ? new CoalescingMessageStore(backingStore, config.storeBatch) : backingStore;
    // Outermost, so the deadline also covers the wait for a coalesced batch.
    const store = new BoundedMessageStore(coalescing, config.storeAdmission);
    const registry = new AppRegistry(config.apps);
    for (const warning of registry.warnings()) logger.warn({ registry: 'RMS_APPS' }, warning);
    const metrics = new Metrics();
    metrics.watchBacklog(() => store.backlogByTopic(), logger.child({ part: 'metrics' }), config.metricsCacheMs);
    const failover = options.transport ? undefined : await createFailoverTransport(config, logger);
    const transport: Transport = options.transport ?? (failover as FailoverParts).transport;
    if (failover) {
      const { transport: failoverTransport, redis } = failover;
      metrics.watchFailover({ status: () => failoverTransport.status(), listDepths: () => redis.listDepths() }, logger.child({ part: 'metrics' }), config.metricsCacheMs);
    }
    const notifier = new AlertBatcher({
      sinks: [
        ...config.alerts.webhooks.map(
          (url) =>
            new WebhookSink(url, {
              timeoutMs: config.alerts.webhookTimeoutMs,
              attempts: config.alerts.webhookAttempts,
              retryDelayMs: config.alerts.webhookRetryDelayMs,
            }),
        ),
        ...(options.notificationSinks ?? []),
      ],
      windowMs: config.alerts.windowMs,
      logger: logger.child({ part: 'alerts' }),
    });
    const scheduleFor = deliveryScheduleResolver(config.delivery, config.topicSchedules);
    const history = new HistoryRecorder({ store, logger: logger.child({ part: 'history' }) });
    const dispatcher = new Dispatcher({
      store,
      transport,
      scheduleFor,
      notifier,
      metrics,
      history,
      dispatchLeaseMs: config.loops.leaseMs,
      firstRoundAtConfirm: config.firstRoundAtConfirm,
      logger: logger.child({ part: 'dispatcher' }),
    });
    const checkBack = new CheckBackWorker({
      store,
      client: options.checkBackClient ?? new HttpCheckBackClient({ timeoutMs: config.checkTimeoutMs }),
      registry,
      schedule: config.checkBack,
      dispatcher,
      dispatchLeaseMs: config.loops.leaseMs,
      notifier,
      metrics,
      history,
      logger: logger.child({ part: 'check-back' }),
    });
    const loopOptions = {
      batchSize: config.loops.claimBatch,
      concurrency: config.loops.concurrency,
      pollIntervalMs: config.loops.pollIntervalMs,
    };
    const claim = (status: 'PENDING' | 'SENDING') => (limit: number) => {
      const now = new Date();
      return store.claimDue({ status, now, leaseUntil: new Date(now.getTime() + config.loops.leaseMs), limit });
    };
    const loops = [
      new DueLoop({ ...loopOptions, name: 'check-back', claim: claim('PENDING'), handle: (m) => checkBack.check(m), logger }),
      new DueLoop({ ...loopOptions, name: 'redelivery', claim: claim('SENDING'), handle: (m) => dispatcher.redeliver(m), logger }),
    ];
    const retention = new RetentionSweeper({
      store,
      retentionMs: config.retention.retentionMs,
      intervalMs: config.retention.intervalMs,
      logger,
      metrics,
    });
    const service = new MessageService({
      store,
      checkDelayMs: config.checkBack.delayMs,
      dispatcher,
      dispatchLeaseMs: config.loops.leaseMs,
      ackTimeoutFor: (topic, group) => scheduleFor(topic, group).ackTimeoutMs,
      scheduleFor,
      subscriptions: registry,
      maxDelayMs: config.maxDelayMs,
      metrics: metrics.delivery,
      history,
      onDead: (message, groups, consumerApp) => reportDead(message, { notifier, metrics, history }, groups, { actor: 'consumer', app: consumerApp }),
    });
    const app = createHttpApp({
      service,
      registry,
      maxPayloadBytes: config.maxPayloadBytes,
      maxPayloadDepth: config.maxPayloadDepth,
      maxHeartbeatExtendMs: config.maxHeartbeatExtendMs,
      maxInFlightRequests: config.maxInFlightRequests,
      admissionTargetMs: config.admissionTargetMs,
      logger,
      metrics,
      stats: new MessageStats({ store }),
      degradeSwitch: failover?.degradeSwitch,
      failoverStatus: failover ? () => failoverDetails(failover.transport) : undefined,
      readinessChecks: [
        {
          name: 'store',
          check: async () => {
            await store.ping();
            return { kind: store.kind };
          },
        },
        // The transport publishes go to now: RabbitMQ, or Redis while degraded.
        { name: 'transport', check: async () => (await transport.ping(), failover ? failoverDetails(failover.transport) : { mode: transport.name }) },
        ...(failover
          ? [
              { name: 'rabbitmq', required: false, check: () => failover.rabbitmq.ping() },
              { name: 'redis', required: false, check: () => failover.redis.ping() },
              {
                name: 'zookeeper',
                required: false,
                check: async () => {
                  if (!failover.degradeSwitch.connected) throw new Error('not connected; acting on the last state seen');
                },
              },
            ]
          : []),
      ],
    });
    const http = await new Promise<Server>((resolve, reject) => {
      const server = app.listen({ port: config.port, backlog: config.listenBacklog }, (error?: Error) => (error ? reject(error) : resolve(server)));
    });
    // A client that stops sending mid-request must not hold a socket forever.
    http.requestTimeout = 30_000;
    http.headersTimeout = 10_000;
    http.keepAliveTimeout = 5_000;
    const drain = new RequestDrain(http);
    for (const loop of loops) loop.start();
    retention.start();
    const server = new RmsServer(
      http,
      drain,
      { store, transport, degradeSwitch: failover?.degradeSwitch, dispatcher, loops, retention, notifier, history },
      logger,
      config.shutdownGraceMs,
    );
    logger.info({ port: server.port, store: store.kind, apps: config.apps.map((app) => app.app) }, 'RMS listening');
    return server;
  }

  /**
   * Stops accepting connections and claiming due messages, lets in-flight requests and
   * deliveries finish (requests up to the grace period, then what is left is closed;
   * keep-alive connections are closed as soon as they are idle, so an idle client does not
   * hold shutdown up), sends held-back alerts, and closes the transport and the store.
   * Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const { store, transport, degradeSwitch, dispatcher, loops, retention, notifier, history } = this.parts;
      this.logger.info({ graceMs: this.shutdownGraceMs }, 'RMS shutting down');
      await Promise.all([this.drain.drain(this.shutdownGraceMs), ...loops.map((loop) => loop.stop()), retention.stop()]);
      await dispatcher.close();
      await history.flush();
      await notifier.flush();
      await transport.close();
      await degradeSwitch?.close();
      await store.close();
      this.logger.info('RMS stopped');
    })();
    return this.stopping;
  }
}
