/**
 * The durations a chaos run gives RMS and its clients: every schedule in milliseconds, so
 * a fault, its detection and the recovery after it all fit in a few seconds, and the fault
 * schedule can be derived from them (a freeze must outlast the lease, a ZooKeeper cut the
 * session timeout).
 */

/** RMS's schedules for the run, as the environment settings of the README's table. */
export const CHAOS_RMS_SCHEDULE = {
  RMS_CHECK_DELAY_MS: '1000',
  RMS_CHECK_INTERVAL_MS: '1000',
  // Generous on purpose: a run's faults must never exhaust a schedule, so a DEAD message is a finding.
  RMS_CHECK_MAX: '200',
  RMS_CHECK_TIMEOUT_MS: '1000',
  RMS_ACK_TIMEOUT_MS: '3000',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_RETRY_FIRST_DELAY_MS: '500',
  RMS_RETRY_INTERVAL_MS: '1000',
  RMS_RETRY_MAX: '500',
  RMS_PUBLISH_TIMEOUT_MS: '800',
  RMS_POLL_INTERVAL_MS: '100',
  RMS_LEASE_MS: '2000',
  RMS_FAILOVER_THRESHOLD: '10',
  RMS_FALLBACK_SHARDS: '100',
  RMS_PROBE_INTERVAL_MS: '300',
  RMS_ZK_SESSION_TIMEOUT_MS: '2000',
  RMS_SHUTDOWN_GRACE_MS: '1000',
  // The default: a blackholed store is answered 503 after this long (the blackholes last up to 8 s).
  RMS_STORE_DEADLINE_MS: '5000',
} as const;

/** The same durations as numbers, for the fault schedule and the clients. */
export const CHAOS_DURATIONS = {
  leaseMs: Number(CHAOS_RMS_SCHEDULE.RMS_LEASE_MS),
  ackTimeoutMs: Number(CHAOS_RMS_SCHEDULE.RMS_ACK_TIMEOUT_MS),
  zkSessionTimeoutMs: Number(CHAOS_RMS_SCHEDULE.RMS_ZK_SESSION_TIMEOUT_MS),
  /** How often a consumer's running handler heartbeats: a third of the ack timeout. */
  heartbeatIntervalMs: Number(CHAOS_RMS_SCHEDULE.RMS_ACK_TIMEOUT_MS) / 3,
  /**
   * How long the clients give one HTTP exchange with RMS: longer than any fault lasts, so
   * an answer RMS makes a client wait for is measured (the slowest answer), not cut short.
   */
  clientTimeoutMs: 10_000,
} as const;
