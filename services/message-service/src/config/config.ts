/**
 * RMS's configuration: read from the environment once, at start-up, validated into one
 * typed object. A missing or malformed setting stops start-up with a message that names
 * the variable. Names and defaults are part of the contract (design section 9).
 */
import { QUEUE_TYPES, type QueueType } from '@rms/client-sdk';
import { z } from 'zod';
import { ConfigurationError } from '../domain/errors.js';
import { SCHEMA_NAME_PATTERN } from '../store/postgres/schema.js';
import { describeIssue } from '../validation/describe-issue.js';
import { type AppRegistration, parseAppRegistry } from './app-registry.js';
import { type TopicScheduleOverrides, parseTopicSchedules } from './topic-schedules.js';

/** Check-back schedule (design section 5). */
export interface CheckBackConfig {
  /** First check this long after prepare. @defaultValue 6000 */
  delayMs: number;
  /** Then every this long. @defaultValue 30000 */
  intervalMs: number;
  /** At most this many checks, then `DEAD` (`CHECK_EXHAUSTED`). @defaultValue 15 */
  maxChecks: number;
}

/** Delivery and redelivery schedule (design section 6). */
export interface DeliveryConfig {
  /** Ack deadline after each delivery. @defaultValue 240000 */
  ackTimeoutMs: number;
  /** Immediate retries of a failed publish. @defaultValue 3 */
  retryImmediate: number;
  /** Delay of the first scheduled retry after the immediate ones. @defaultValue 240000 */
  retryFirstDelayMs: number;
  /** Delay of every later retry. @defaultValue 60000 */
  retryIntervalMs: number;
  /** At most this many delivery attempts, then `DEAD` (`DELIVERY_EXHAUSTED`). @defaultValue 50 */
  retryMax: number;
}

/** MQ-outage fallback (design section 7). */
export interface FailoverConfig {
  /** Consecutive publish failures that flip the degrade flag. @defaultValue 10 */
  threshold: number;
  /** Redis shard lists per topic. @defaultValue 100 */
  shards: number;
  /** How often a degraded publisher probes RabbitMQ. @defaultValue 5000 */
  probeIntervalMs: number;
  /** `RMS_ZK_SESSION_TIMEOUT_MS`: a ZooKeeper session lost this long is rebuilt. @defaultValue 6000 */
  zkSessionTimeoutMs: number;
}

/** The due-message loops (check-back and redelivery). */
export interface LoopConfig {
  /** `RMS_POLL_INTERVAL_MS`: how often an idle loop looks for due messages. @defaultValue 1000 */
  pollIntervalMs: number;
  /** `RMS_CLAIM_BATCH`: messages claimed per pass. @defaultValue 100 */
  claimBatch: number;
  /** `RMS_LEASE_MS`: how long a claimed message belongs to one instance. @defaultValue 30000 */
  leaseMs: number;
  /** `RMS_LOOP_CONCURRENCY`: messages one loop works on at once. @defaultValue 16 */
  concurrency: number;
}

/** Everything RMS is configured with. */
export interface RmsConfig {
  /** HTTP port (`PORT`). @defaultValue 8080 */
  port: number;
  /** `STORE_URL`: `postgres://…` or `mongodb://…`. Required. */
  storeUrl: string;
  /** `RABBITMQ_URL`: a broker, or a cluster's nodes comma-separated (tried in turn). @defaultValue amqp://guest:guest@127.0.0.1:5672 */
  rabbitmqUrl: string;
  /** `REDIS_URL`: one Redis, or the seed nodes of a Redis Cluster, comma-separated. @defaultValue redis://127.0.0.1:6379 */
  redisUrl: string;
  /**
   * `RMS_REDIS_CLUSTER` [false]: treat a single `REDIS_URL` as a Redis Cluster seed (several
   * URLs always are); `RMS_REDIS_WAIT_REPLICAS` [0]: replicas that must hold a fallback entry
   * before a publish counts as done (`WAIT`), so a master's failover loses none.
   */
  redis: { cluster: boolean; waitReplicas: number };
  /** `RMS_QUEUE_TYPE`: the kind of RabbitMQ queue declared per topic, `classic` or `quorum` (for a cluster). @defaultValue classic */
  queueType: QueueType;
  /** `ZK_CONNECT`. @defaultValue 127.0.0.1:2181 */
  zkConnect: string;
  /** `RMS_ZK_ROOT`. @defaultValue /rms */
  zkRoot: string;
  /** `RMS_APPS`: the app registry. Required. */
  apps: AppRegistration[];
  checkBack: CheckBackConfig;
  delivery: DeliveryConfig;
  failover: FailoverConfig;
  /** `RMS_RABBITMQ_QUEUE_PREFIX`: prefix of every queue name, so deployments sharing a broker stay apart. @defaultValue rms. */
  queuePrefix: string;
  /** `RMS_MAX_DELAY_MS`: the latest a delayed message may be asked to go, from its prepare. @defaultValue 30 days */
  maxDelayMs: number;
  /** `RMS_TOPIC_SCHEDULES`: per-topic (and per-group) overrides of the delivery schedule. @defaultValue {} */
  topicSchedules: TopicScheduleOverrides;
  /** `RMS_CHECK_TIMEOUT_MS`: how long a producer has to answer a check-back. @defaultValue 5000 */
  checkTimeoutMs: number;
  /** `RMS_PUBLISH_TIMEOUT_MS`: how long RabbitMQ has to confirm a publish. @defaultValue 5000 */
  publishTimeoutMs: number;
  loops: LoopConfig;
  /**
   * `RMS_FIRST_ROUND_AT_CONFIRM`: a confirm's write also records round 1 of the deliveries
   * published right after it, so a publish that goes as recorded writes nothing; the price
   * is that a crash between the confirm and its publish is redelivered at the round's ack
   * deadline rather than when `RMS_LEASE_MS` ends (design section 6). `false`: round 1 is
   * recorded after its publish, a second write per delivery. @defaultValue true
   */
  firstRoundAtConfirm: boolean;
  /**
   * `RMS_ALERT_WEBHOOKS` (comma-separated URLs); `RMS_ALERT_WINDOW_MS` [300000]: after an
   * alert is sent at once, further alerts of its topic and reason this long are grouped into
   * one follow-up; `RMS_ALERT_WEBHOOK_TIMEOUT_MS` [5000]: one POST's timeout;
   * `RMS_ALERT_WEBHOOK_ATTEMPTS` [4]: POSTs per notification, retried with backoff from
   * `RMS_ALERT_WEBHOOK_RETRY_DELAY_MS` [1000], doubling.
   */
  alerts: { webhooks: string[]; windowMs: number; webhookTimeoutMs: number; webhookAttempts: number; webhookRetryDelayMs: number };
  /** `RMS_RETENTION_MS` [7 days]: finished messages are removed after this (PostgreSQL: by whole days); `RMS_RETENTION_INTERVAL_MS` [1 hour]: how often. */
  retention: { retentionMs: number; intervalMs: number };
  /** `RMS_MAX_PAYLOAD_BYTES`: largest payload, as JSON bytes. @defaultValue 262144 */
  maxPayloadBytes: number;
  /** `RMS_MAX_PAYLOAD_DEPTH`: deepest nesting of arrays and objects in a payload. @defaultValue 64 */
  maxPayloadDepth: number;
  /** `RMS_MAX_HEARTBEAT_EXTEND_MS`: the largest `extendMs` a heartbeat may ask for. @defaultValue 3600000 */
  maxHeartbeatExtendMs: number;
  /**
   * `RMS_STORE_DEADLINE_MS` [5000]: a store call not answered in this long fails with 503
   * and `Retry-After`; `RMS_STORE_MAX_PENDING` [10000]: most store calls waiting or running
   * at once; past it new calls fail with 503 at once instead of queueing.
   */
  storeAdmission: { deadlineMs: number; maxPending: number };
  /**
   * `RMS_MAX_INFLIGHT_REQUESTS`: most API requests (`/v1/...`) handled at once. A request
   * arriving past it is answered 503 `OVERLOADED` with `Retry-After: 1` at once, before
   * its body is read, and nothing of it is done; health, readiness, metrics and the
   * dashboard are never refused. It bounds what an overload can cost: an admitted request
   * waits behind at most this many (at 1,000 requests/s, half a second), and RMS holds at
   * most this many requests (about 25 KB each with its connection, for 200-byte payloads:
   * `bench/admission-memory.ts`) instead of a queue that grows for as long as the overload
   * lasts. Raise it only for clients that keep more requests in flight and a store fast
   * enough to serve them.
   * With the adaptive limit (`RMS_ADMISSION_TARGET_MS`) this is its ceiling.
   * @defaultValue 512
   */
  maxInFlightRequests: number;
  /**
   * `RMS_ADMISSION_TARGET_MS`: the latency admission control holds admitted API requests to
   * (their 90th percentile over each interval, a quarter of this within 100–250 ms, from
   * admission to answer).
   * The limit on requests in flight adapts to it: it shrinks in proportion when the
   * requests take longer (a slow or stalled store), and grows back, up to
   * `RMS_MAX_INFLIGHT_REQUESTS`, while they take less and the limit is in use
   * (`http/admission-limit.ts`). Set it above the latency RMS has when it is busy but not
   * queueing, or the limit stays low and refuses what could be served: on the shared
   * 2-core bench box, where RMS's own latency under load was 250–500 ms without any queue,
   * 250 held the admitted requests' p99 inside RMS under 1 s but admitted a fifth of what
   * the fixed bound did; 1000 admitted as much as the fixed bound with that p99 still under
   * 1 s (docs/benchmarks.md, overload). 0 turns the adaptive limit off:
   * `RMS_MAX_INFLIGHT_REQUESTS` alone bounds.
   * @defaultValue 1000
   */
  admissionTargetMs: number;
  /**
   * `RMS_LISTEN_BACKLOG`: connections the kernel may hold for RMS to accept (capped by
   * `net.core.somaxconn`, 4096 on current Linux). Node's default is 511: under the bench's
   * overload a pooled client opening ~900 connections at once while RMS's event loop was
   * busy overflowed it (670–2,950 `ListenDrops` a run), and a dropped SYN is retried after
   * 1 s, then 3, 7 and 15 s in all: the slowest 1 % of requests waited 1.2–2.3 s for their
   * connection, 0.14–0.17 s with 4096 (docs/benchmarks.md, overload). A queued connection
   * costs the kernel a few hundred bytes.
   * @defaultValue 4096
   */
  listenBacklog: number;
  /**
   * `RMS_STORE_BATCH_MAX` [500]: most concurrent store calls of one kind coalesced into one
   * statement (1 turns coalescing off); `RMS_STORE_BATCH_CONCURRENCY` [4]: most such
   * statements of one kind running at once (calls arriving meanwhile join the next one).
   */
  storeBatch: { maxBatch: number; maxInFlight: number };
  /** `LOG_LEVEL`: pino level. @defaultValue info */
  logLevel: string;
  /** `RMS_SHUTDOWN_GRACE_MS`: how long shutdown waits for in-flight requests. @defaultValue 10000 */
  shutdownGraceMs: number;
  /**
   * `RMS_METRICS_CACHE_MS`: how long one store read of the backlog gauges (and one read of
   * the Redis fallback list depths) serves `/metrics` scrapes. @defaultValue 10000
   */
  metricsCacheMs: number;
}

/** A PostgreSQL `STORE_URL` that parses, with a `?schema=` naming a schema RMS can use; other stores ignore it. */
function hasValidSchemaParameter(url: string): boolean {
  if (!/^postgres(ql)?:/.test(url)) return true;
  let schema: string | null;
  try {
    schema = new URL(url).searchParams.get('schema');
  } catch {
    return false;
  }
  return schema === null || SCHEMA_NAME_PATTERN.test(schema);
}

const integer = (min: number) =>
  z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(min, `must be at least ${min}`);

/** The default of `RMS_MAX_INFLIGHT_REQUESTS`: admission control's bound on API requests in flight. */
export const DEFAULT_MAX_INFLIGHT_REQUESTS = 512;

/** The default of `RMS_ADMISSION_TARGET_MS`: the latency the adaptive admission limit holds admitted requests to. */
export const DEFAULT_ADMISSION_TARGET_MS = 1000;

/** The default of `RMS_MAX_HEARTBEAT_EXTEND_MS` (one hour); the committed OpenAPI document shows it. */
export const DEFAULT_MAX_HEARTBEAT_EXTEND_MS = 3_600_000;

const envSchema = z.object({
  PORT: integer(0).max(65_535, 'must be at most 65535').default(8080),
  STORE_URL: z
    .string({ error: 'is required: postgres://… or mongodb://…' })
    .regex(/^(postgres(ql)?|mongodb(\+srv)?):\/\//, 'must start with postgres:// or mongodb://')
    .refine(hasValidSchemaParameter, 'its ?schema= parameter must match [a-z_][a-z0-9_]* (at most 63 characters)'),
  RABBITMQ_URL: z
    .string()
    .regex(/^amqps?:\/\/[^,]+(,\s*amqps?:\/\/[^,]+)*$/, 'must be amqp:// or amqps:// URLs, comma-separated for the nodes of a cluster')
    .default('amqp://guest:guest@127.0.0.1:5672'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/[^,]+(,\s*rediss?:\/\/[^,]+)*$/, 'must be redis:// or rediss:// URLs, comma-separated for the seed nodes of a Redis Cluster')
    .default('redis://127.0.0.1:6379'),
  RMS_REDIS_CLUSTER: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  RMS_FIRST_ROUND_AT_CONFIRM: z.enum(['true', 'false'], { error: 'must be true or false' }).default('true'),
  RMS_REDIS_WAIT_REPLICAS: integer(0).max(10, 'must be at most 10').default(0),
  RMS_QUEUE_TYPE: z.enum(QUEUE_TYPES, { error: `must be one of ${QUEUE_TYPES.join(', ')}` }).default('classic'),
  ZK_CONNECT: z.string().min(1).default('127.0.0.1:2181'),
  RMS_ZK_ROOT: z.string().regex(/^\/[^\s]*$/, 'must be an absolute ZooKeeper path like /rms').default('/rms'),
  RMS_APPS: z.string({ error: 'is required: a JSON array of apps, or a path to a JSON file' }).min(1),
  RMS_CHECK_DELAY_MS: integer(0).default(6000),
  RMS_CHECK_INTERVAL_MS: integer(1).default(30_000),
  RMS_CHECK_MAX: integer(1).default(15),
  RMS_ACK_TIMEOUT_MS: integer(1).default(240_000),
  RMS_RETRY_IMMEDIATE: integer(0).default(3),
  RMS_RETRY_FIRST_DELAY_MS: integer(0).default(240_000),
  RMS_RETRY_INTERVAL_MS: integer(1).default(60_000),
  RMS_RETRY_MAX: integer(1).default(50),
  RMS_FAILOVER_THRESHOLD: integer(1).default(10),
  RMS_FALLBACK_SHARDS: integer(1).max(10_000, 'must be at most 10000').default(100),
  RMS_PROBE_INTERVAL_MS: integer(1).default(5000),
  RMS_ZK_SESSION_TIMEOUT_MS: integer(100).default(6000),
  RMS_MAX_PAYLOAD_BYTES: integer(1).default(262_144),
  RMS_MAX_PAYLOAD_DEPTH: integer(1).max(1000, 'must be at most 1000').default(64),
  RMS_MAX_HEARTBEAT_EXTEND_MS: integer(1).default(DEFAULT_MAX_HEARTBEAT_EXTEND_MS),
  RMS_STORE_DEADLINE_MS: integer(1).default(5000),
  RMS_STORE_MAX_PENDING: integer(1).default(10_000),
  RMS_MAX_INFLIGHT_REQUESTS: integer(1).default(DEFAULT_MAX_INFLIGHT_REQUESTS),
  RMS_LISTEN_BACKLOG: integer(1).max(65_535, 'must be at most 65535').default(4096),
  RMS_ADMISSION_TARGET_MS: integer(0).max(60_000, 'must be at most 60000').default(DEFAULT_ADMISSION_TARGET_MS),
  RMS_TOPIC_SCHEDULES: z.string().optional(),
  RMS_RABBITMQ_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must match [A-Za-z0-9._-]{1,64}').default('rms.'),
  RMS_MAX_DELAY_MS: integer(1).default(30 * 24 * 3600 * 1000),
  RMS_CHECK_TIMEOUT_MS: integer(1).default(5000),
  RMS_PUBLISH_TIMEOUT_MS: integer(1).default(5000),
  RMS_POLL_INTERVAL_MS: integer(1).default(1000),
  RMS_CLAIM_BATCH: integer(1).max(10_000, 'must be at most 10000').default(100),
  RMS_LEASE_MS: integer(1).default(30_000),
  RMS_LOOP_CONCURRENCY: integer(1).max(1000, 'must be at most 1000').default(16),
  RMS_ALERT_WEBHOOKS: z
    .string()
    .transform((value) => value.split(',').map((url) => url.trim()).filter(Boolean))
    .pipe(z.array(z.url({ protocol: /^https?$/, error: 'must be comma-separated http(s) URLs' })))
    .default([]),
  RMS_ALERT_WINDOW_MS: integer(0).default(300_000),
  RMS_ALERT_WEBHOOK_TIMEOUT_MS: integer(1).default(5000),
  RMS_ALERT_WEBHOOK_ATTEMPTS: integer(1).max(20, 'must be at most 20').default(4),
  RMS_ALERT_WEBHOOK_RETRY_DELAY_MS: integer(0).default(1000),
  RMS_RETENTION_MS: integer(0).default(7 * 24 * 3600 * 1000),
  RMS_RETENTION_INTERVAL_MS: integer(1).default(3600 * 1000),
  RMS_STORE_BATCH_MAX: integer(1).max(5000, 'must be at most 5000').default(500),
  RMS_STORE_BATCH_CONCURRENCY: integer(1).max(100, 'must be at most 100').default(4),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  RMS_SHUTDOWN_GRACE_MS: integer(0).default(10_000),
  RMS_METRICS_CACHE_MS: integer(0).default(10_000),
});

/** Every environment variable {@link loadConfig} reads (deployment files are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

/**
 * Reads and validates the configuration from `env`.
 * @throws ConfigurationError naming every variable that is missing or malformed.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): RmsConfig {
  // An empty variable means "not set", as in most twelve-factor tools.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => describeIssue(issue).message);
    throw new ConfigurationError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  // A claimed message must stay claimed for the whole of its slowest handling, or a second
  // instance would take it over mid-way and double the work.
  const slowestDeliveryMs = (e.RMS_RETRY_IMMEDIATE + 1) * e.RMS_PUBLISH_TIMEOUT_MS;
  if (e.RMS_LEASE_MS <= Math.max(slowestDeliveryMs, e.RMS_CHECK_TIMEOUT_MS)) {
    throw new ConfigurationError(
      `invalid configuration: RMS_LEASE_MS (${e.RMS_LEASE_MS}) must exceed both RMS_CHECK_TIMEOUT_MS (${e.RMS_CHECK_TIMEOUT_MS}) ` +
        `and (RMS_RETRY_IMMEDIATE + 1) × RMS_PUBLISH_TIMEOUT_MS (${slowestDeliveryMs})`,
    );
  }
  return {
    port: e.PORT,
    storeUrl: e.STORE_URL,
    rabbitmqUrl: e.RABBITMQ_URL,
    redisUrl: e.REDIS_URL,
    redis: { cluster: e.RMS_REDIS_CLUSTER === 'true', waitReplicas: e.RMS_REDIS_WAIT_REPLICAS },
    queueType: e.RMS_QUEUE_TYPE,
    zkConnect: e.ZK_CONNECT,
    zkRoot: e.RMS_ZK_ROOT,
    apps: parseAppRegistry(e.RMS_APPS),
    checkBack: { delayMs: e.RMS_CHECK_DELAY_MS, intervalMs: e.RMS_CHECK_INTERVAL_MS, maxChecks: e.RMS_CHECK_MAX },
    delivery: {
      ackTimeoutMs: e.RMS_ACK_TIMEOUT_MS,
      retryImmediate: e.RMS_RETRY_IMMEDIATE,
      retryFirstDelayMs: e.RMS_RETRY_FIRST_DELAY_MS,
      retryIntervalMs: e.RMS_RETRY_INTERVAL_MS,
      retryMax: e.RMS_RETRY_MAX,
    },
    failover: {
      threshold: e.RMS_FAILOVER_THRESHOLD,
      shards: e.RMS_FALLBACK_SHARDS,
      probeIntervalMs: e.RMS_PROBE_INTERVAL_MS,
      zkSessionTimeoutMs: e.RMS_ZK_SESSION_TIMEOUT_MS,
    },
    topicSchedules: parseTopicSchedules(e.RMS_TOPIC_SCHEDULES),
    queuePrefix: e.RMS_RABBITMQ_QUEUE_PREFIX,
    maxDelayMs: e.RMS_MAX_DELAY_MS,
    checkTimeoutMs: e.RMS_CHECK_TIMEOUT_MS,
    publishTimeoutMs: e.RMS_PUBLISH_TIMEOUT_MS,
    loops: {
      pollIntervalMs: e.RMS_POLL_INTERVAL_MS,
      claimBatch: e.RMS_CLAIM_BATCH,
      leaseMs: e.RMS_LEASE_MS,
      concurrency: e.RMS_LOOP_CONCURRENCY,
    },
    firstRoundAtConfirm: e.RMS_FIRST_ROUND_AT_CONFIRM === 'true',
    alerts: {
      webhooks: e.RMS_ALERT_WEBHOOKS,
      windowMs: e.RMS_ALERT_WINDOW_MS,
      webhookTimeoutMs: e.RMS_ALERT_WEBHOOK_TIMEOUT_MS,
      webhookAttempts: e.RMS_ALERT_WEBHOOK_ATTEMPTS,
      webhookRetryDelayMs: e.RMS_ALERT_WEBHOOK_RETRY_DELAY_MS,
    },
    retention: { retentionMs: e.RMS_RETENTION_MS, intervalMs: e.RMS_RETENTION_INTERVAL_MS },
    maxPayloadBytes: e.RMS_MAX_PAYLOAD_BYTES,
    maxPayloadDepth: e.RMS_MAX_PAYLOAD_DEPTH,
    maxHeartbeatExtendMs: e.RMS_MAX_HEARTBEAT_EXTEND_MS,
    storeAdmission: { deadlineMs: e.RMS_STORE_DEADLINE_MS, maxPending: e.RMS_STORE_MAX_PENDING },
    maxInFlightRequests: e.RMS_MAX_INFLIGHT_REQUESTS,
    admissionTargetMs: e.RMS_ADMISSION_TARGET_MS,
    listenBacklog: e.RMS_LISTEN_BACKLOG,
    storeBatch: { maxBatch: e.RMS_STORE_BATCH_MAX, maxInFlight: e.RMS_STORE_BATCH_CONCURRENCY },
    logLevel: e.LOG_LEVEL,
    shutdownGraceMs: e.RMS_SHUTDOWN_GRACE_MS,
    metricsCacheMs: e.RMS_METRICS_CACHE_MS,
  };
}
