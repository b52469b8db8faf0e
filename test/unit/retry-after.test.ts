/**
 * Reading `Retry-After`: delta-seconds or an HTTP date, anything else ignored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noteRetryAfter, retryAfterMs, retryAfterOf } from '../../client-sdk/src/http/retry-after.js';

test('delta-seconds become milliseconds', () => {
  assert.equal(retryAfterMs('5'), 5000);
  assert.equal(retryAfterMs(' 0 '), 0);
  assert.equal(retryAfterMs(['2', '9']), 2000);
});

test('an HTTP date becomes the time left until it, never less than 0', () => {
  const now = Date.parse('2026-12-02T06:00:00Z');
  assert.equal(retryAfterMs('Wed, 02 Dec 2026 06:00:03 GMT', now), 3000);
  assert.equal(retryAfterMs('Wed, 02 Dec 2026 05:59:00 GMT', now), 0);
});

test('absent or unreadable headers ask for nothing', () => {
  assert.equal(retryAfterMs(undefined), undefined);
  assert.equal(retryAfterMs('soon'), undefined);
  assert.equal(retryAfterMs('-1'), undefined);
});

test('the delay is kept per error, and only when there is one', () => {
  const asked = new Error('503');
  const silent = new Error('503');
  noteRetryAfter(asked, 1000);
  noteRetryAfter(silent, undefined);
  assert.equal(retryAfterOf(asked), 1000);
  assert.equal(retryAfterOf(silent), undefined);
});
