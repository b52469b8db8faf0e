/**
 * The delivery schedule the integration tests of redelivery share, in milliseconds so the
 * real schedule logic runs fast: a poll every 20 ms, one immediate retry of a failed
 * publish, rounds 100 ms apart after failures, and no check-back during a test. Each test
 * adds its own ack timeout and round limit.
 */
export const FAST_DELIVERY_ENV = Object.freeze({
  RMS_POLL_INTERVAL_MS: '20',
  RMS_RETRY_IMMEDIATE: '1',
  RMS_RETRY_FIRST_DELAY_MS: '100',
  RMS_RETRY_INTERVAL_MS: '100',
  RMS_PUBLISH_TIMEOUT_MS: '1000',
  RMS_LEASE_MS: '3000',
  RMS_CHECK_TIMEOUT_MS: '500',
  RMS_CHECK_DELAY_MS: '60000',
});
