/**
 * The RMS settings the failover fault tests share: the design's threshold and shard count,
 * every other duration in milliseconds so the real schedule logic runs fast.
 */
export const FAILOVER_TEST_ENV = {
  RMS_FAILOVER_THRESHOLD: '10',
  RMS_FALLBACK_SHARDS: '100',
  RMS_PROBE_INTERVAL_MS: '300',
  RMS_POLL_INTERVAL_MS: '20',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_PUBLISH_TIMEOUT_MS: '500',
  RMS_RETRY_FIRST_DELAY_MS: '200',
  RMS_RETRY_INTERVAL_MS: '200',
  RMS_RETRY_MAX: '50',
  RMS_ACK_TIMEOUT_MS: '10000',
  RMS_LEASE_MS: '3000',
  RMS_CHECK_DELAY_MS: '60000',
  RMS_CHECK_TIMEOUT_MS: '500',
  RMS_ZK_SESSION_TIMEOUT_MS: '2000',
} as const;

/** A condition for `waitUntil` that holds once `attempt` succeeds ("does it work again?"). */
export function succeeds(attempt: () => Promise<unknown>): () => Promise<boolean> {
  return () => attempt().then(
    () => true,
    () => false,
  );
}
