/**
 * RMS reads PostgreSQL's `timestamptz` text with its own parser (for speed); it must give
 * exactly the instant pg's general parser gives, and hand anything unusual to that parser.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { parseTimestamptz } from '../../services/message-service/src/store/postgres/postgres-message-store.js';

const general = pg.types.getTypeParser(1184, 'text') as (text: string) => Date;

test('UTC timestamps with 0 to 6 fraction digits parse to the same instant as pg’s parser', () => {
  const samples = [
    '2026-11-22 06:57:46+00',
    '2026-11-22 06:57:46.3+00',
    '2026-11-22 06:57:46.35+00',
    '2026-11-22 06:57:46.357+00',
    '2026-11-22 06:57:46.357241+00',
    '1999-12-31 23:59:59.999+00',
    '2024-02-29 12:00:00.001+00',
    '0001-01-01 00:00:00+00',
  ];
  for (const text of samples) assert.equal(parseTimestamptz(text).getTime(), general(text).getTime(), text);
});

test('other shapes (offsets, BC, infinity) are left to pg’s parser', () => {
  for (const text of ['2026-11-22 07:57:46.357+01', '2026-11-22 01:27:46.357-05:30', '0044-03-15 12:00:00+00 BC']) {
    assert.equal(parseTimestamptz(text).getTime(), general(text).getTime(), text);
  }
  assert.equal(parseTimestamptz('infinity').valueOf(), general('infinity').valueOf());
});
